//! Kubernetes admission: whether the images of a Pod (or of a workload that creates pods) may
//! run, answered from stored decisions only — never from adapters, so an answer takes one
//! indexed lookup per image (contract `supply-chain.md` §9–§11).
//!
//! Every image must be pinned by digest and have a final **continue** decision (an approved
//! review ends as one) for the namespace's environment, no older than `max_age`; the newest
//! final decision for that digest and environment is the one that counts, so a later
//! terminate withdraws an earlier continue. Exempt namespaces and a break-glass annotation
//! (only for configured groups, or the controllers that create pods from an admitted template)
//! are honoured and recorded: a warning log line with who, what and why, a metric, and an
//! audit annotation on the answer. Anything else — no environment for the namespace, a kind
//! Portcullis does not read, an empty or unparsable image, a pending review — is a denial that
//! says which image lacks what and links the decision.

pub mod images;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::domain::{DecisionStatus, Environment, ImageRef, Verdict};
use crate::metrics::Metrics;
use crate::store::{ImageDecision, MAX_IMAGE_DECISIONS, Store, StoreError};

/// `admission:` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSettings {
    /// Serve `POST /v1/admission`. Off by default: a cluster opts in by installing the webhook.
    pub enabled: bool,
    /// Namespace (exact, or a glob such as `payments-*`) → environment. An exact name wins over
    /// globs, a longer glob over a shorter one.
    pub environments: BTreeMap<String, String>,
    /// The environment of namespaces no entry names (a cluster that is one environment);
    /// `null` denies them.
    pub cluster_environment: Option<String>,
    /// How old the deciding decision may be.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Namespaces admitted without a lookup (recorded). The webhook configuration should
    /// exclude them too; this is the second line.
    pub exempt_namespaces: Vec<String>,
    pub break_glass: BreakGlassSettings,
    /// An HTTPS listener of its own for the API server, serving only `POST /v1/admission`
    /// (the API server calls webhooks over HTTPS only). Unset: the webhook is answered on
    /// `server.http_addr` alone.
    #[serde(default)]
    pub listener: Option<AdmissionListener>,
}

/// `admission.listener`: where the API server calls, with what certificate, and which client
/// certificates identify it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionListener {
    pub addr: std::net::SocketAddr,
    /// The serving certificate (its SAN names the Service, `<svc>.<ns>.svc`) and, with
    /// `client_ca_file`, the CAs that sign the API server's client certificate
    /// (`client_auth: required` or `optional`, as `server.tls`).
    pub tls: crate::tls::ServerTlsConfig,
    /// Names (DNS or IP subjectAltNames) of which a client certificate must carry one to be
    /// taken as the API server. Empty: any certificate the client CAs verify — right only for
    /// a CA that signs nothing else (never the cluster CA, which signs users' certificates).
    #[serde(default)]
    pub client_names: Vec<String>,
}

/// Who called `POST /v1/admission`, once authenticated. Only these get an answer about
/// decisions; anyone else gets a 401 or 403 that says nothing about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionCaller {
    /// A client certificate verified on `admission.listener` (the API server's admission
    /// kubeconfig `client-certificate`).
    Certificate,
    /// A bearer token with the `admission` (or `admin`) role, by name (the API server's
    /// admission kubeconfig `token`).
    Token(String),
}

/// Break-glass: an annotation with a reason, honoured for some requesters only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassSettings {
    /// The annotation whose value is the reason (on the object, or its pod template).
    pub annotation: String,
    /// Groups (`userInfo.groups`) allowed to break glass; empty disables break-glass.
    pub groups: Vec<String>,
    /// Users that create pods from templates already admitted (the workload controllers): a
    /// break-glass annotation on a pod they create is honoured, since the workload carrying it
    /// was admitted for a requester in `groups`.
    pub controllers: Vec<String>,
}

/// One admission request, as the contract decoded it.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    pub sub_resource: String,
    pub username: String,
    pub groups: Vec<String>,
    pub dry_run: bool,
    pub object: Value,
    pub old_object: Value,
}

/// The answer, before the contract encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionAnswer {
    pub allowed: bool,
    /// Why it was denied (one line per image), or empty.
    pub message: String,
    pub warnings: Vec<String>,
    /// `auditAnnotations` (the API server prefixes them with the webhook's name).
    pub audit: BTreeMap<String, String>,
}

impl AdmissionAnswer {
    fn allow() -> Self {
        Self {
            allowed: true,
            message: String::new(),
            warnings: Vec::new(),
            audit: BTreeMap::new(),
        }
    }

    fn deny(message: String) -> Self {
        Self {
            allowed: false,
            message,
            warnings: Vec::new(),
            audit: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionBuildError {
    #[error("`admission.environments`: `{pattern}` is not a namespace glob: {detail}")]
    BadGlob { pattern: String, detail: String },
    #[error("`admission.{field}`: `{value}` is not an environment name: {detail}")]
    BadEnvironment {
        field: &'static str,
        value: String,
        detail: String,
    },
}

impl AdmissionBuildError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            AdmissionBuildError::BadGlob { .. } => "config.admission_glob",
            AdmissionBuildError::BadEnvironment { .. } => "config.admission_environment",
        }
    }
}

/// The admission decision service.
pub struct Admission {
    exact: BTreeMap<String, Environment>,
    globs: Vec<(GlobMatcher, Environment)>,
    cluster: Option<Environment>,
    settings: AdmissionSettings,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Admission {
    pub fn build(
        settings: &AdmissionSettings,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        public_url: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdmissionBuildError> {
        let env = |field: &'static str, value: &str| {
            Environment::parse(value).map_err(|e| AdmissionBuildError::BadEnvironment {
                field,
                value: value.to_string(),
                detail: e.to_string(),
            })
        };
        let mut exact = BTreeMap::new();
        let mut globs = Vec::new();
        for (pattern, environment) in &settings.environments {
            let environment = env("environments", environment)?;
            if pattern.contains(['*', '?', '[', '{']) {
                let glob = Glob::new(pattern).map_err(|e| AdmissionBuildError::BadGlob {
                    pattern: pattern.clone(),
                    detail: e.to_string(),
                })?;
                globs.push((pattern.len(), glob.compile_matcher(), environment));
            } else {
                exact.insert(pattern.clone(), environment);
            }
        }
        // The most specific (longest) glob first.
        globs.sort_by_key(|g| std::cmp::Reverse(g.0));
        let cluster = settings
            .cluster_environment
            .as_deref()
            .map(|c| env("cluster_environment", c))
            .transpose()?;
        Ok(Self {
            exact,
            globs: globs.into_iter().map(|(_, g, e)| (g, e)).collect(),
            cluster,
            settings: settings.clone(),
            store,
            metrics,
            public_url,
            clock,
        })
    }

    /// The names a client certificate must carry on `admission.listener` (empty: any the
    /// client CAs verify).
    pub fn client_names(&self) -> &[String] {
        self.settings
            .listener
            .as_ref()
            .map_or(&[], |l| l.client_names.as_slice())
    }

    fn environment(&self, namespace: &str) -> Option<&Environment> {
        self.exact
            .get(namespace)
            .or_else(|| {
                self.globs
                    .iter()
                    .find(|(g, _)| g.is_match(namespace))
                    .map(|(_, e)| e)
            })
            .or(self.cluster.as_ref())
    }

    fn link(&self, id: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{}/v1/decisions/{id}", base.trim_end_matches('/')),
            None => format!("/v1/decisions/{id}"),
        }
    }

    /// Answers one request at the injected clock's now. A store fault is an error (the
    /// contract answers it as a denial, never an allow).
    pub async fn review(&self, req: &AdmissionRequest) -> Result<AdmissionAnswer, StoreError> {
        let now = self.clock.now();
        let answer = self.review_inner(req, now).await;
        let outcome = match &answer {
            Ok(a) if a.allowed && a.audit.contains_key("break-glass") => "break_glass",
            Ok(a) if a.allowed && a.audit.contains_key("exempt") => "exempt",
            Ok(a) if a.allowed => "allowed",
            Ok(_) => "denied",
            Err(_) => "error",
        };
        self.metrics.admission(outcome);
        answer
    }

    async fn review_inner(
        &self,
        req: &AdmissionRequest,
        now: DateTime<Utc>,
    ) -> Result<AdmissionAnswer, StoreError> {
        // DELETE and CONNECT run nothing new.
        if !matches!(req.operation.as_str(), "CREATE" | "UPDATE") {
            return Ok(AdmissionAnswer::allow());
        }
        if self.settings.exempt_namespaces.contains(&req.namespace) {
            let mut a = AdmissionAnswer::allow();
            a.audit.insert("exempt".into(), req.namespace.clone());
            return Ok(a);
        }
        let Some(found) = images::images(&req.kind, &req.object) else {
            return Ok(AdmissionAnswer::deny(format!(
                "portcullis does not read `{}` objects; it admits Pods and the workloads that create them",
                req.kind
            )));
        };
        // On UPDATE only what is new or changed is checked: a running pod keeps its images.
        let before: Vec<Option<String>> = images::images(&req.kind, &req.old_object)
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.image)
            .collect();
        let to_check: Vec<images::ImageUse> = found
            .into_iter()
            .filter(|u| {
                req.operation == "CREATE" || u.image.is_none() || !before.contains(&u.image)
            })
            .collect();
        if to_check.is_empty() {
            return Ok(AdmissionAnswer::allow());
        }
        let Some(environment) = self.environment(&req.namespace) else {
            return Ok(AdmissionAnswer::deny(format!(
                "namespace `{}` maps to no environment: add it to `admission.environments` or set `admission.cluster_environment`",
                req.namespace
            )));
        };
        let mut problems = Vec::new();
        let mut decisions = Vec::new();
        for u in &to_check {
            match self.check_image(u, environment, now).await? {
                Ok(id) => decisions.push(id),
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            let mut a = AdmissionAnswer::allow();
            decisions.dedup();
            a.audit.insert("decisions".into(), decisions.join(","));
            return Ok(a);
        }
        match self.break_glass(req) {
            BreakGlass::Honoured(reason) => {
                if !req.dry_run {
                    tracing::warn!(
                        break_glass = true,
                        user = %req.username,
                        namespace = %req.namespace,
                        kind = %req.kind,
                        name = %req.name,
                        reason = %reason,
                        at = %now.to_rfc3339(),
                        images = %problems.join("; "),
                        "admission break-glass: images admitted without a decision"
                    );
                }
                let mut a = AdmissionAnswer::allow();
                a.audit.insert("break-glass".into(), reason.clone());
                a.audit
                    .insert("break-glass-by".into(), req.username.clone());
                a.warnings.push(format!(
                    "portcullis break-glass by {}: {}",
                    req.username,
                    truncate(&reason, 60)
                ));
                Ok(a)
            }
            BreakGlass::Refused(why) => {
                problems.push(why);
                Ok(AdmissionAnswer::deny(problems.join("; ")))
            }
            BreakGlass::Absent => Ok(AdmissionAnswer::deny(problems.join("; "))),
        }
    }

    /// The deciding decision's id, or what the image lacks.
    async fn check_image(
        &self,
        u: &images::ImageUse,
        environment: &Environment,
        now: DateTime<Utc>,
    ) -> Result<Result<String, String>, StoreError> {
        let Some(text) = u.image.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(Err(format!("{} has no image", u.location)));
        };
        let image = match ImageRef::parse(text) {
            Ok(i) => i,
            Err(e) => {
                return Ok(Err(format!(
                    "image `{text}` ({}) is not a valid reference: {e}",
                    u.location
                )));
            }
        };
        let Some(digest) = &image.digest else {
            return Ok(Err(format!(
                "image `{text}` ({}) is not pinned by digest; deploy `repo@sha256:…`",
                u.location
            )));
        };
        let found = self
            .store
            .decisions_for_image(digest, environment, MAX_IMAGE_DECISIONS)
            .await?;
        let newest_final = found.iter().find(|d| d.status == DecisionStatus::Final);
        let Some(d) = newest_final else {
            let why = match found.first() {
                Some(p) => format!(
                    "its decision {} for `{environment}` is pending review ({})",
                    p.id,
                    self.link(p.id.as_str())
                ),
                None => format!("no decision for `{environment}` names digest `{digest}`"),
            };
            return Ok(Err(format!("image `{text}` ({}): {why}", u.location)));
        };
        if d.verdict != Verdict::Continue {
            return Ok(Err(format!(
                "image `{text}` ({}): the newest decision for `{environment}` is {} ({})",
                u.location,
                d.verdict,
                self.link(d.id.as_str())
            )));
        }
        if too_old(d, now, self.settings.max_age) {
            return Ok(Err(format!(
                "image `{text}` ({}): its continue decision for `{environment}` is older than {} ({}); check it again",
                u.location,
                humantime::format_duration(self.settings.max_age),
                self.link(d.id.as_str())
            )));
        }
        Ok(Ok(d.id.as_str().to_string()))
    }

    fn break_glass(&self, req: &AdmissionRequest) -> BreakGlass {
        let key = &self.settings.break_glass.annotation;
        let reason = req.object["metadata"]["annotations"][key]
            .as_str()
            .or_else(|| images::pod_metadata(&req.kind, &req.object)["annotations"][key].as_str())
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let Some(reason) = reason else {
            return BreakGlass::Absent;
        };
        let bg = &self.settings.break_glass;
        let in_group = req.groups.iter().any(|g| bg.groups.contains(g));
        let controller = bg.controllers.contains(&req.username);
        if !bg.groups.is_empty() && (in_group || controller) {
            BreakGlass::Honoured(reason.to_string())
        } else {
            BreakGlass::Refused(format!(
                "break-glass annotation `{key}` refused: `{}` is not in a group of `admission.break_glass.groups`",
                req.username
            ))
        }
    }
}

enum BreakGlass {
    Absent,
    Honoured(String),
    Refused(String),
}

fn too_old(d: &ImageDecision, now: DateTime<Utc>, max_age: Duration) -> bool {
    let at = d.decided_at.unwrap_or(d.created_at);
    match now.signed_duration_since(at).to_std() {
        Ok(age) => age > max_age,
        // Decided in the future by more than clock skew: not evidence of anything.
        Err(_) => at - now > chrono::Duration::minutes(5),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn decided(at: &str) -> ImageDecision {
        let t = DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc);
        ImageDecision {
            id: crate::domain::DecisionId::generate(),
            application: "web".into(),
            verdict: Verdict::Continue,
            status: DecisionStatus::Final,
            created_at: t,
            decided_at: Some(t),
        }
    }

    #[test]
    fn a_decision_counts_until_max_age_and_never_from_the_future() {
        let now = DateTime::parse_from_rfc3339("2026-03-12T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let day = Duration::from_secs(86_400);
        assert!(!too_old(&decided("2026-03-11T12:00:01Z"), now, day));
        assert!(too_old(&decided("2026-03-11T11:59:59Z"), now, day));
        assert!(
            !too_old(&decided("2026-03-12T12:01:00Z"), now, day),
            "clock skew"
        );
        assert!(
            too_old(&decided("2026-03-12T13:00:00Z"), now, day),
            "future-dated"
        );
    }
}
