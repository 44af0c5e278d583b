//! `spawn_app()`: the real service on 127.0.0.1:0 with a temp SQLite file, and clients for it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use portcullis::adapters::AdapterConfig;
use portcullis::auth::{Role, TokenConfig, hash_token};
use portcullis::client::GateClient;
use portcullis::config::{self, Settings};
use portcullis::secret::{Secret, SecretSource};
use portcullis::serve::App;
use serde_json::Value;

use super::Answer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The checkpoint signing key every test service uses (`portcullis audit keygen` output; a test
/// key, never used anywhere else).
pub const TEST_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOOOpgtu1B78NnDgexTpqvx2JUIbXhHdZUl7+qDbWJHC
-----END PRIVATE KEY-----
";

pub struct TestApp {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// `admission.listener`'s address, when the app has one.
    pub admission_addr: Option<SocketAddr>,
    pub http: reqwest::Client,
    /// Sent as the bearer token by the helpers (None when the app runs without tokens).
    pub token: Option<String>,
    pub settings: Settings,
    pub dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), portcullis::serve::ServeError>>>,
}

#[derive(Default)]
pub struct TestAppBuilder {
    policies: Option<Vec<(String, String)>>,
    adapters: Vec<Value>,
    tokens: Vec<(String, String, Vec<Role>, Vec<String>)>,
    /// `scopes` by token name, as JSON (the YAML shape).
    scopes: std::collections::BTreeMap<String, Value>,
    clock: Option<Arc<dyn portcullis::clock::Clock>>,
    approvals: Vec<(String, u32, Vec<String>)>,
    evidence_deadline: Option<std::time::Duration>,
    review_timeout: Option<std::time::Duration>,
    store_url: Option<String>,
    store_connect_timeout: Option<std::time::Duration>,
    environments: Option<Vec<portcullis::domain::EnvironmentDecl>>,
    no_rules_verdict: Option<portcullis::domain::Verdict>,
    admission: Option<Value>,
    max_evidence_bytes: Option<usize>,
}

pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn grpc(&self) -> GateClient {
        GateClient::new(
            &self.grpc_url(),
            self.token.as_deref(),
            std::time::Duration::from_secs(5),
        )
        .unwrap()
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn post_check(&self, body: &Value) -> reqwest::Response {
        self.authed(self.http.post(self.url("/v1/checks")).json(body))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.authed(self.http.get(self.url(path)))
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/checks` with the app's token; assert the status with `.json_with(…)`.
    pub async fn check(&self, body: &Value) -> Answer {
        Answer::read("POST /v1/checks", self.post_check(body).await).await
    }

    /// `GET /v1/decisions/{id}` with the app's token.
    pub async fn decision(&self, id: &str) -> Answer {
        let path = format!("/v1/decisions/{id}");
        Answer::read(format!("GET {path}"), self.get(&path).await).await
    }

    /// `POST path` with a JSON body and the given bearer token (the app's when `None`).
    pub async fn post_as(&self, token: Option<&str>, path: &str, body: &Value) -> Answer {
        let rb = self.http.post(self.url(path)).json(body);
        let rb = match token {
            Some(t) => rb.bearer_auth(t),
            None => self.authed(rb),
        };
        Answer::read(format!("POST {path}"), rb.send().await.unwrap()).await
    }

    /// `GET path` with the given bearer token (the app's when `None`).
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> Answer {
        let rb = self.http.get(self.url(path));
        let rb = match token {
            Some(t) => rb.bearer_auth(t),
            None => self.authed(rb),
        };
        Answer::read(format!("GET {path}"), rb.send().await.unwrap()).await
    }

    /// `POST /v1/analysis` (the Argo Rollouts `web` metric) with the app's token.
    pub async fn analysis(&self, body: &Value) -> Answer {
        self.post_as(None, "/v1/analysis", body).await
    }

    /// `POST /v1/servicenow/change-check` as `token`.
    pub async fn change_check(&self, token: &str, body: &Value) -> Answer {
        self.post_as(Some(token), "/v1/servicenow/change-check", body)
            .await
    }

    /// `POST path` with a raw JSON body (sent as is, so a test can send what a client would
    /// not build) and the given bearer token (the app's when `None`).
    pub async fn post_body_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let rb = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        let rb = match token {
            Some(t) => rb.bearer_auth(t),
            None => self.authed(rb),
        };
        Answer::read(format!("POST {path}"), rb.send().await.unwrap()).await
    }

    /// `GET /v1/decisions{query}` (`query` empty or starting with `?`).
    pub async fn decisions(&self, token: Option<&str>, query: &str) -> Answer {
        self.get_as(token, &format!("/v1/decisions{query}")).await
    }

    /// `POST /v1/decisions/{id}/review` with `body` (`{"resolution": …, "comment": …}`).
    pub async fn review(&self, token: Option<&str>, id: &str, body: &Value) -> Answer {
        self.post_as(token, &format!("/v1/decisions/{id}/review"), body)
            .await
    }

    /// Approves the review of decision `id` as `token`'s holder.
    pub async fn approve(&self, token: Option<&str>, id: &str) -> Answer {
        self.review(token, id, &serde_json::json!({"resolution": "approve"}))
            .await
    }

    /// Rejects the review of decision `id` as `token`'s holder.
    pub async fn reject(&self, token: Option<&str>, id: &str) -> Answer {
        self.review(token, id, &serde_json::json!({"resolution": "reject"}))
            .await
    }

    /// `GET /v1/decisions/{id}/proof`.
    pub async fn proof(&self, token: Option<&str>, id: &str) -> Answer {
        self.get_as(token, &format!("/v1/decisions/{id}/proof"))
            .await
    }

    /// `GET /v1/audit/export{query}` (`query` empty or starting with `?`).
    pub async fn audit_export(&self, token: Option<&str>, query: &str) -> Answer {
        self.get_as(token, &format!("/v1/audit/export{query}"))
            .await
    }

    /// `GET /v1/audit/public-key`.
    pub async fn public_key(&self, token: Option<&str>) -> Answer {
        self.get_as(token, "/v1/audit/public-key").await
    }

    /// `GET /v1/policies/{version}`.
    pub async fn policy_version(&self, token: Option<&str>, version: &str) -> Answer {
        self.get_as(token, &format!("/v1/policies/{version}")).await
    }

    /// `POST /v1/evidence/{source}/{subject}` with a report as submitted (raw bytes).
    pub async fn submit_evidence(
        &self,
        token: Option<&str>,
        source: &str,
        subject: &str,
        report: impl Into<reqwest::Body>,
    ) -> Answer {
        self.post_body_as(token, &format!("/v1/evidence/{source}/{subject}"), report)
            .await
    }

    /// `POST /v1/spinnaker/gates` (a Spinnaker stage creating a gate).
    pub async fn spinnaker_create(&self, token: Option<&str>, body: &Value) -> Answer {
        self.post_as(token, "/v1/spinnaker/gates", body).await
    }

    /// `GET /v1/spinnaker/gates/{id}` (the stage polling its gate).
    pub async fn spinnaker_status(&self, token: Option<&str>, id: &str) -> Answer {
        self.get_as(token, &format!("/v1/spinnaker/gates/{id}"))
            .await
    }

    /// `POST /v1/spinnaker/gates/cancel` (the pipeline was canceled).
    pub async fn spinnaker_cancel(&self, token: Option<&str>, body: &Value) -> Answer {
        self.post_as(token, "/v1/spinnaker/gates/cancel", body)
            .await
    }

    /// `POST /v1/servicenow/callback` (a change request was decided).
    pub async fn servicenow_callback(&self, token: Option<&str>, body: &Value) -> Answer {
        self.post_as(token, "/v1/servicenow/callback", body).await
    }

    /// `POST /v1/jira/webhook` (an issue changed).
    pub async fn jira_webhook(&self, token: Option<&str>, body: &Value) -> Answer {
        self.post_as(token, "/v1/jira/webhook", body).await
    }

    /// `POST /v1/admission` on the main port (a Kubernetes `AdmissionReview`).
    pub async fn admission(&self, token: Option<&str>, body: &Value) -> Answer {
        self.post_as(token, "/v1/admission", body).await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Answer {
        self.get_as(None, "/readyz").await
    }

    /// Kills the service without a graceful shutdown: its tasks are aborted and its listeners
    /// closed, as when a pod is killed.
    pub fn kill(mut self) {
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) -> (Settings, Arc<tempfile::TempDir>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        (self.settings.clone(), Arc::clone(&self.dir))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestAppBuilder {
    /// Replaces the built-in pack with these (file name, YAML) policy files.
    pub fn policies(mut self, files: &[(&str, &str)]) -> Self {
        self.policies = Some(
            files
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        );
        self
    }

    /// Enables the admission webhook with these settings (JSON, merged over the defaults).
    pub fn admission(mut self, settings: Value) -> Self {
        self.admission = Some(settings);
        self
    }

    /// Adds an adapter from its configuration as JSON (the same shape as YAML config).
    pub fn adapter(mut self, config: Value) -> Self {
        self.adapters.push(config);
        self
    }

    pub fn token(mut self, name: &str, token: &str, roles: Vec<Role>) -> Self {
        self.tokens
            .push((name.to_string(), token.to_string(), roles, Vec::new()));
        self
    }

    /// A token whose holder belongs to approver `groups`.
    pub fn token_in_groups(
        mut self,
        name: &str,
        token: &str,
        roles: Vec<Role>,
        groups: &[&str],
    ) -> Self {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.tokens
            .push((name.to_string(), token.to_string(), roles, groups));
        self
    }

    /// A token limited by `scopes` (the `auth.tokens[].scopes` shape, as JSON).
    pub fn token_scoped(
        mut self,
        name: &str,
        token: &str,
        roles: Vec<Role>,
        scopes: Value,
    ) -> Self {
        self.scopes.insert(name.to_string(), scopes);
        self.token(name, token, roles)
    }

    /// The gate reads time from `clock` (set it instead of sleeping).
    pub fn clock(mut self, clock: Arc<dyn portcullis::clock::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Reviews in `environment` need `required` distinct approvers from `groups` (any when empty).
    pub fn approvals(mut self, environment: &str, required: u32, groups: &[&str]) -> Self {
        self.approvals.push((
            environment.to_string(),
            required,
            groups.iter().map(|g| g.to_string()).collect(),
        ));
        self
    }

    /// `server.max_evidence_bytes`.
    pub fn max_evidence_bytes(mut self, n: usize) -> Self {
        self.max_evidence_bytes = Some(n);
        self
    }

    pub fn evidence_deadline(mut self, d: std::time::Duration) -> Self {
        self.evidence_deadline = Some(d);
        self
    }

    /// Short review timeouts, with a fast expiry sweeper, for expiry tests.
    pub fn review_timeout(mut self, d: std::time::Duration) -> Self {
        self.review_timeout = Some(d);
        self
    }

    /// Uses this store (e.g. a PostgreSQL schema from `support::db`) instead of a temp SQLite
    /// file.
    pub fn store_url(mut self, url: &str) -> Self {
        self.store_url = Some(url.to_string());
        self
    }

    /// Bounds every wait on the store (a short one makes outage tests fail fast).
    pub fn store_connect_timeout(mut self, d: std::time::Duration) -> Self {
        self.store_connect_timeout = Some(d);
        self
    }

    /// Declares these environments (`gate.environments`) instead of the built-in list.
    pub fn environments(mut self, decls: Vec<portcullis::domain::EnvironmentDecl>) -> Self {
        self.environments = Some(decls);
        self
    }

    /// The answer to a check no rule applies to (`gate.no_rules_verdict`).
    pub fn no_rules_verdict(mut self, v: portcullis::domain::Verdict) -> Self {
        self.no_rules_verdict = Some(v);
        self
    }

    pub fn settings(&self, dir: &Path) -> Settings {
        let mut s = config::load_from(None, Vec::new()).unwrap();
        s.server.http_addr = "127.0.0.1:0".parse().unwrap();
        s.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        s.store.url = format!("sqlite://{}", dir.join("portcullis.db").display());
        s.audit.signing_key = Some(SecretSource::Value(Secret::new(TEST_SIGNING_KEY)));
        if let Some(url) = &self.store_url {
            s.store.url.clone_from(url);
        }
        if let Some(d) = self.store_connect_timeout {
            s.store.connect_timeout = d;
        }
        if let Some(files) = &self.policies {
            let pdir = dir.join("policies");
            std::fs::create_dir_all(&pdir).unwrap();
            for (name, text) in files {
                std::fs::write(pdir.join(name), text).unwrap();
            }
            s.policy.dir = Some(pdir);
            s.policy.reload_interval = std::time::Duration::from_millis(50);
        }
        s.adapters = self
            .adapters
            .iter()
            .map(|v| serde_json::from_value::<AdapterConfig>(v.clone()).unwrap())
            .collect();
        s.auth.tokens = self
            .tokens
            .iter()
            .map(|(name, token, roles, groups)| TokenConfig {
                name: name.clone(),
                sha256: hash_token(token),
                roles: roles.clone(),
                groups: groups.clone(),
                scopes: self
                    .scopes
                    .get(name)
                    .map(|v| serde_json::from_value(v.clone()).unwrap()),
            })
            .collect();
        for (env, required, groups) in &self.approvals {
            s.review.approvals.insert(
                env.clone(),
                portcullis::config::ApprovalRule {
                    required: *required,
                    groups: groups.clone(),
                },
            );
        }
        if let Some(d) = self.evidence_deadline {
            s.gate.evidence_deadline = d;
        }
        if let Some(decls) = &self.environments {
            s.gate.environments = Some(decls.clone());
        }
        if let Some(v) = self.no_rules_verdict {
            s.gate.no_rules_verdict = v;
        }
        if let Some(a) = &self.admission {
            s.admission.enabled = true;
            for (key, value) in a.as_object().unwrap() {
                match key.as_str() {
                    "environments" => {
                        s.admission.environments = serde_json::from_value(value.clone()).unwrap();
                    }
                    "max_age" => {
                        s.admission.max_age =
                            humantime::parse_duration(value.as_str().unwrap()).unwrap();
                    }
                    "break_glass_groups" => {
                        s.admission.break_glass.groups =
                            serde_json::from_value(value.clone()).unwrap();
                    }
                    "listener" => {
                        s.admission.listener = Some(serde_json::from_value(value.clone()).unwrap());
                    }
                    other => panic!("unknown admission test setting `{other}`"),
                }
            }
        }
        if let Some(n) = self.max_evidence_bytes {
            s.server.max_evidence_bytes = n;
        }
        if let Some(d) = self.review_timeout {
            s.review.timeout = d;
            s.review.sweep_interval = std::time::Duration::from_millis(100);
        }
        s
    }

    pub async fn spawn(self) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let settings = self.settings(dir.path());
        let token = self.tokens.first().map(|(_, t, _, _)| t.clone());
        match self.clock {
            Some(clock) => start_with_clock(settings, dir, token, clock).await,
            None => start(settings, dir, token).await,
        }
    }
}

/// Starts an app whose gate reads time from `clock`.
pub async fn start_with_clock(
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    token: Option<String>,
    clock: Arc<dyn portcullis::clock::Clock>,
) -> TestApp {
    let app = App::build_with_clock(settings.clone(), clock)
        .await
        .unwrap();
    launch(app, settings, dir, token)
}

/// Starts an app from explicit settings (used to restart on the same store).
pub async fn start(
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    token: Option<String>,
) -> TestApp {
    let app = App::build(settings.clone()).await.unwrap();
    launch(app, settings, dir, token)
}

fn launch(
    app: App,
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    token: Option<String>,
) -> TestApp {
    let http_addr = app.http_addr();
    let grpc_addr = app.grpc_addr();
    let admission_addr = app.admission_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        http_addr,
        grpc_addr,
        admission_addr,
        http: reqwest::Client::new(),
        token,
        settings,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A digest that parses.
pub fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}
