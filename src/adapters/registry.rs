//! Registry adapter (`kind: registry`): what the OCI registry itself says about each image of a
//! check — whether its digest exists there, where its tag points today, the index's platforms,
//! the newest tag by a semver rule — and who signed it and how it was built: cosign signatures
//! (`sha256-<hex>.sig`, and Sigstore bundles as OCI 1.1 referrers) and in-toto attestations in
//! DSSE envelopes (`.att`, referrers), verified against configured public keys, with the SLSA
//! provenance fields rules compare with the check (contract `supply-chain.md` §1–§6).
//!
//! ```yaml
//! adapters:
//!   - kind: registry
//!     name: registry                     # evidence namespace
//!     registries:
//!       - host: ghcr.io                  # as images name it
//!         base_url: https://ghcr.io      # default https://<host>
//!         auth: {type: basic, username: ci-bot, password: {env: GHCR_TOKEN}}   # optional
//!         token_realms: []               # other https hosts allowed to receive the credential
//!     keys:                              # trusted signing keys (cosign.pub: ECDSA P-256, or Ed25519)
//!       - {id: release-ci, public_key: {file: /etc/portcullis/cosign.pub}}
//!     newest_tag: {pattern: '^v?\d+\.\d+\.\d+$', prerelease: false}   # optional
//!     timeout: 5s
//!     retries: 2
//!     max_concurrency: 16
//!     cache_ttl: 30s
//! ```
//!
//! Fail closed: a registry fault (401 after authenticating, 429, 5xx, a body that does not hash
//! to its digest) is an `AdapterError`, never "unsigned" or "absent"; a digest the registry
//! does not have is the fact `exists: false`; a bad signature, an unknown key, a payload for
//! another digest or an attestation whose subject is another digest never sets `signed` or
//! `provenance`, and is listed under `problems`. Keyless (certificate) signatures cannot be
//! verified without a Sigstore trust root and count as unverified.

pub mod oci;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use self::oci::{Manifest, Registry};
use self::verify::{COSIGN_SIGN_PREDICATE, TrustedKey};
use super::cache::FactCache;
use super::credentials::AuthConfig;
use super::instance::{self, invalid};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::{CheckRequest, ImageRef};
use crate::secret::SecretSource;

/// Layer type of a cosign Simple Signing payload.
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// Signature layers, attestation layers and referrers read per image: more is an attack or a
/// misconfiguration, and reading it would only burn the deadline.
const MAX_ARTIFACTS: usize = 50;

/// Configuration of one `kind: registry` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub name: String,
    pub registries: Vec<RegistryHost>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub newest_tag: Option<NewestTag>,
    #[serde(default = "instance::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "instance::default_retries")]
    pub retries: u32,
    #[serde(default = "instance::default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// One registry host images name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHost {
    pub host: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub token_realms: Vec<String>,
}

/// A trusted signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    /// PEM `PUBLIC KEY`, from a file, the environment or the configuration.
    pub public_key: SecretSource,
}

/// Which tags count for "the newest tag": semantic versions (an optional leading `v`),
/// optionally only those matching `pattern`, prereleases only if `prerelease`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewestTag {
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub prerelease: bool,
}

struct Inner {
    name: String,
    registries: BTreeMap<String, Registry>,
    keys: Vec<TrustedKey>,
    newest: Option<(Option<regex::Regex>, bool)>,
    timeout: Duration,
}

/// A built `kind: registry` adapter.
pub struct RegistryAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for RegistryAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAdapter")
            .field("name", &self.inner.name)
            .field("registries", &self.inner.registries.keys())
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

impl RegistryAdapter {
    pub fn build(
        config: &RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        if config.registries.is_empty() {
            return Err(invalid(
                name,
                "registries",
                "name at least one registry host (`- host: ghcr.io`)",
            ));
        }
        let mut registries = BTreeMap::new();
        for (i, r) in config.registries.iter().enumerate() {
            let field = |f: &str| format!("registries[{i}].{f}");
            let base_text = r
                .base_url
                .clone()
                .unwrap_or_else(|| format!("https://{}", r.host));
            let base = instance::base_url(name, &base_text).map_err(|_| {
                invalid(
                    name,
                    &field("base_url"),
                    "must be an http or https url without credentials or query",
                )
            })?;
            let credentials = match &r.auth {
                None => None,
                Some(AuthConfig::Basic { username, password }) => {
                    let secret = password
                        .resolve()
                        .map_err(|e| invalid(name, &field("auth"), e))?;
                    Some((username.clone(), secret.expose().to_string()))
                }
                Some(other) => {
                    return Err(invalid(
                        name,
                        &field("auth.type"),
                        format!(
                            "`{}` is not supported for registries; use `basic` (the registry's token service exchanges it for a token)",
                            other.type_name()
                        ),
                    ));
                }
            };
            let client = instance::client(
                name,
                config.timeout,
                config.retries,
                config.max_concurrency,
                None,
                Arc::clone(&clock),
            )?;
            let registry = Registry::new(
                r.host.clone(),
                base,
                credentials,
                r.token_realms.clone(),
                client,
            )
            .map_err(|e| invalid(name, &field("auth"), e))?;
            if registries.insert(r.host.clone(), registry).is_some() {
                return Err(invalid(name, &field("host"), "is listed twice"));
            }
        }
        let mut keys = Vec::new();
        for (i, k) in config.keys.iter().enumerate() {
            let field = format!("keys[{i}].public_key");
            let pem = k
                .public_key
                .resolve()
                .map_err(|e| invalid(name, &field, e))?;
            keys.push(
                TrustedKey::from_pem(&k.id, pem.expose()).map_err(|e| invalid(name, &field, e))?,
            );
            if config.keys[..i].iter().any(|o| o.id == k.id) {
                return Err(invalid(name, &format!("keys[{i}].id"), "is used twice"));
            }
        }
        let newest = match &config.newest_tag {
            None => None,
            Some(n) => {
                let pattern = n
                    .pattern
                    .as_deref()
                    .map(regex::Regex::new)
                    .transpose()
                    .map_err(|e| invalid(name, "newest_tag.pattern", e))?;
                Some((pattern, n.prerelease))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.clone(),
                registries,
                keys,
                newest,
                timeout: config.timeout,
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for RegistryAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "registry"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let sources: Vec<(String, Option<String>)> = request
            .sources
            .iter()
            .map(|s| {
                (
                    s.repository.clone(),
                    s.commit.as_ref().map(|c| c.as_str().to_string()),
                )
            })
            .collect();
        let key = format!("{:?} {sources:?}", request.images);
        let images = request.images.clone();
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move {
                let facts = try_join_all(
                    images
                        .iter()
                        .map(|image| inner.image(image, &sources, deadline)),
                )
                .await?;
                Ok(Facts {
                    document: json!({ "images": facts }),
                    url: None,
                    excerpt: None,
                })
            })
            .await
    }
}

/// What was verified for one image: signatures, attestations, and why some did not count.
#[derive(Default)]
struct Verified {
    signed_by: Vec<String>,
    attestations: Vec<Value>,
    provenance: Option<(verify::Provenance, String, Vec<String>)>,
    problems: Vec<String>,
    referrers_api: Option<bool>,
}

impl Verified {
    fn add_signers(&mut self, ids: Vec<String>) {
        for id in ids {
            if !self.signed_by.contains(&id) {
                self.signed_by.push(id);
            }
        }
    }

    fn problem(&mut self, p: String) {
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    /// A verified in-toto statement from any location: a signature (cosign v3 bundles) or an
    /// attestation; provenance only when its subject is this digest.
    fn statement(&mut self, s: verify::VerifiedStatement, from: &str) {
        if !s.subject_matches {
            self.problem(format!(
                "a signed `{}` attestation ({from}) is for another digest",
                s.predicate_type
            ));
            self.attestations.push(json!({
                "predicate_type": s.predicate_type, "key_ids": s.key_ids,
                "subject_matches": false, "location": from,
            }));
            return;
        }
        if s.predicate_type == COSIGN_SIGN_PREDICATE {
            self.add_signers(s.key_ids);
            return;
        }
        if self.provenance.is_none()
            && let Some(p) = verify::provenance(&s.predicate_type, &s.predicate)
        {
            self.provenance = Some((p, s.predicate_type.clone(), s.key_ids.clone()));
        }
        self.attestations.push(json!({
            "predicate_type": s.predicate_type, "key_ids": s.key_ids,
            "subject_matches": true, "location": from,
        }));
    }
}

impl Inner {
    async fn image(
        &self,
        image: &ImageRef,
        sources: &[(String, Option<String>)],
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        let reference = image.to_string();
        let Some(registry) = self.registries.get(&image.registry) else {
            return Ok(json!({
                "reference": reference,
                "registry": image.registry,
                "repository": image.repository,
                "configured": false,
                "problems": [format!("registry `{}` is not configured in adapter `{}`", image.registry, self.name)],
            }));
        };
        let repo = image.repository.as_str();
        let tagged = match &image.tag {
            Some(tag) => registry.manifest(repo, tag, deadline).await?,
            None => None,
        };
        let tag_digest = tagged.as_ref().map(|m| m.digest.clone());
        let digest = match (&image.digest, &tag_digest) {
            (Some(d), _) => d.as_str().to_string(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Ok(json!({
                    "reference": reference, "registry": image.registry, "repository": repo,
                    "configured": true, "pinned": false, "exists": false,
                    "tag": image.tag, "tag_digest": null, "tag_moved": image.tag.is_some(),
                    "problems": ["the image names neither a digest nor a tag the registry knows"],
                }));
            }
        };
        let manifest = match (&image.digest, tagged) {
            (Some(_), _) | (None, None) => registry.manifest(repo, &digest, deadline).await?,
            (None, Some(m)) => Some(m),
        };
        let mut facts = json!({
            "reference": reference,
            "registry": image.registry,
            "repository": repo,
            "configured": true,
            "pinned": image.digest.is_some(),
            "digest": digest,
            "exists": manifest.is_some(),
            "tag": image.tag,
            "tag_digest": tag_digest,
            "tag_matches": image.tag.as_ref().map(|_| tag_digest.as_deref() == Some(digest.as_str())),
            // A tag that is gone, or points at another digest, no longer names what is deployed.
            "tag_moved": image.tag.is_some() && tag_digest.as_deref() != Some(digest.as_str()),
        });
        let Some(manifest) = manifest else {
            facts["problems"] = json!([format!(
                "registry `{}` has no manifest `{digest}` in `{repo}`",
                image.registry
            )]);
            return Ok(facts);
        };
        facts["media_type"] = json!(manifest.media_type);
        facts["platforms"] = platforms(&manifest);
        if let Some((pattern, prerelease)) = &self.newest {
            let tags = registry.tags(repo, deadline).await?;
            let newest = newest_tag(&tags, pattern.as_ref(), *prerelease);
            let newest_digest = match &newest {
                Some(t) => registry
                    .manifest(repo, t, deadline)
                    .await?
                    .map(|m| m.digest),
                None => None,
            };
            facts["newest_tag"] = json!(newest);
            facts["is_newest"] = json!(newest_digest.as_deref() == Some(digest.as_str()));
        }
        let v = self.verify(registry, repo, &digest, deadline).await?;
        facts["signed"] = json!(!v.signed_by.is_empty());
        facts["signed_by"] = json!(v.signed_by);
        facts["attestations"] = json!(v.attestations);
        facts["predicate_types"] = json!(
            v.attestations
                .iter()
                .filter(|a| a["subject_matches"] == true)
                .map(|a| a["predicate_type"].clone())
                .collect::<Vec<_>>()
        );
        facts["referrers_api"] = json!(v.referrers_api);
        facts["provenance"] = match &v.provenance {
            None => Value::Null,
            Some((p, kind, keys)) => provenance_facts(p, kind, keys, sources),
        };
        facts["problems"] = json!(v.problems);
        Ok(facts)
    }

    /// Reads every place a signature or attestation of `digest` may be: the `.sig` and `.att`
    /// tags (cosign ≤ v2) and the referrers (cosign v3 bundles, or plain DSSE artifacts).
    async fn verify(
        &self,
        registry: &Registry,
        repo: &str,
        digest: &str,
        deadline: Instant,
    ) -> Result<Verified, AdapterError> {
        let mut v = Verified::default();
        if self.keys.is_empty() {
            v.problem(format!(
                "adapter `{}` has no `keys`: no signature can be verified",
                self.name
            ));
        }
        let tag = digest.replacen(':', "-", 1);
        if let Some(sig) = registry
            .manifest(repo, &format!("{tag}.sig"), deadline)
            .await?
        {
            for layer in layers(&sig) {
                if layer["mediaType"] != SIMPLE_SIGNING {
                    continue;
                }
                let Some(blob) = self
                    .layer_blob(registry, repo, layer, deadline, &mut v)
                    .await?
                else {
                    continue;
                };
                let signature = layer["annotations"][SIGNATURE_ANNOTATION]
                    .as_str()
                    .unwrap_or("");
                match verify::simple_signing(&self.keys, &blob, signature, digest) {
                    Ok(ids) => v.add_signers(ids),
                    Err(e) => v.problem(e),
                }
            }
        }
        if let Some(att) = registry
            .manifest(repo, &format!("{tag}.att"), deadline)
            .await?
        {
            for layer in layers(&att) {
                if layer["mediaType"] != DSSE_ENVELOPE {
                    continue;
                }
                let Some(blob) = self
                    .layer_blob(registry, repo, layer, deadline, &mut v)
                    .await?
                else {
                    continue;
                };
                self.envelope(&blob, digest, "`.att` tag", &mut v);
            }
        }
        let (referrers, api) = registry.referrers(repo, digest, deadline).await?;
        v.referrers_api = Some(api);
        for descriptor in referrers.iter().take(MAX_ARTIFACTS) {
            let Some(d) = descriptor["digest"].as_str() else {
                continue;
            };
            let Some(m) = registry.manifest(repo, d, deadline).await? else {
                v.problem(format!("referrer `{d}` is listed but missing"));
                continue;
            };
            // The subject, like everything unsigned here, is only a hint: what counts is the
            // verified statement's subject.
            let artifact = m.json["artifactType"]
                .as_str()
                .or_else(|| descriptor["artifactType"].as_str())
                .unwrap_or("");
            for layer in layers(&m) {
                let media = layer["mediaType"].as_str().unwrap_or("");
                let bundle =
                    media.starts_with(BUNDLE_PREFIX) || artifact.starts_with(BUNDLE_PREFIX);
                if !bundle && media != DSSE_ENVELOPE {
                    continue;
                }
                let Some(blob) = self
                    .layer_blob(registry, repo, layer, deadline, &mut v)
                    .await?
                else {
                    continue;
                };
                if bundle {
                    self.bundle(&blob, digest, &mut v);
                } else {
                    self.envelope(&blob, digest, "referrer", &mut v);
                }
            }
        }
        Ok(v)
    }

    async fn layer_blob(
        &self,
        registry: &Registry,
        repo: &str,
        layer: &Value,
        deadline: Instant,
        v: &mut Verified,
    ) -> Result<Option<Vec<u8>>, AdapterError> {
        let Some(d) = layer["digest"].as_str() else {
            v.problem("a signature layer has no digest".into());
            return Ok(None);
        };
        let blob = registry.blob(repo, d, deadline).await?;
        if blob.is_none() {
            v.problem(format!(
                "signature layer `{d}` is missing from the registry"
            ));
        }
        Ok(blob)
    }

    fn envelope(&self, blob: &[u8], digest: &str, from: &str, v: &mut Verified) {
        let parsed: Result<Value, _> = serde_json::from_slice(blob);
        match parsed
            .map_err(|e| format!("an attestation ({from}) is not json: {e}"))
            .and_then(|env| verify::dsse_statement(&self.keys, &env, digest))
        {
            Ok(s) => v.statement(s, from),
            Err(e) => v.problem(e),
        }
    }

    /// A Sigstore bundle: only DSSE content under a configured key can be verified here.
    fn bundle(&self, blob: &[u8], digest: &str, v: &mut Verified) {
        let Ok(bundle) = serde_json::from_slice::<Value>(blob) else {
            v.problem("a Sigstore bundle referrer is not json".into());
            return;
        };
        if bundle["dsseEnvelope"].is_object() {
            match verify::dsse_statement(&self.keys, &bundle["dsseEnvelope"], digest) {
                Ok(s) => v.statement(s, "sigstore bundle referrer"),
                Err(e) if bundle["verificationMaterial"]["publicKey"].is_null() => v.problem(
                    format!("{e}; keyless (certificate) bundles need a Sigstore trust root, which is not supported"),
                ),
                Err(e) => v.problem(e),
            }
        } else {
            v.problem(
                "a Sigstore bundle without a DSSE envelope (message signature) is not verified"
                    .into(),
            );
        }
    }
}

fn layers(m: &Manifest) -> impl Iterator<Item = &Value> {
    m.json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_ARTIFACTS)
}

/// `os/architecture[/variant]` of each image of an index, leaving out attestation manifests
/// (`unknown/unknown`); `[]` for a single manifest.
fn platforms(m: &Manifest) -> Value {
    let list: Vec<String> = m.json["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let p = &d["platform"];
            let os = p["os"].as_str()?;
            let arch = p["architecture"].as_str()?;
            if os == "unknown" {
                return None;
            }
            Some(match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
        })
        .collect();
    json!(list)
}

/// The highest semantic version among `tags` (leading `v` allowed), filtered by `pattern`;
/// prereleases only when allowed.
pub fn newest_tag(
    tags: &[String],
    pattern: Option<&regex::Regex>,
    prerelease: bool,
) -> Option<String> {
    tags.iter()
        .filter(|t| pattern.is_none_or(|p| p.is_match(t)))
        .filter_map(|t| {
            let v = semver::Version::parse(t.strip_prefix('v').unwrap_or(t)).ok()?;
            (prerelease || v.pre.is_empty()).then_some((v, t))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t.clone())
}

fn provenance_facts(
    p: &verify::Provenance,
    predicate_type: &str,
    keys: &[String],
    sources: &[(String, Option<String>)],
) -> Value {
    let repo_matches = p
        .source_repository
        .as_deref()
        .is_some_and(|r| sources.iter().any(|(s, _)| verify::same_repository(r, s)));
    let commit_matches = p.source_commit.as_deref().is_some_and(|c| {
        sources.iter().any(|(s, commit)| {
            p.source_repository
                .as_deref()
                .is_some_and(|r| verify::same_repository(r, s))
                && commit
                    .as_deref()
                    .is_some_and(|sc| verify::same_commit(c, sc))
        })
    });
    json!({
        "predicate_type": predicate_type,
        "key_ids": keys,
        "builder_id": p.builder_id,
        "build_type": p.build_type,
        "source_repository": p.source_repository,
        "source_commit": p.source_commit,
        "source_ref": p.source_ref,
        "repository_matches_request": repo_matches,
        "commit_matches_request": commit_matches,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn newest_tag_follows_semver_not_text_order() {
        let tags: Vec<String> = ["1.9.0", "1.10.0", "v1.10.1-rc.1", "latest", "1.2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(newest_tag(&tags, None, false).as_deref(), Some("1.10.0"));
        assert_eq!(
            newest_tag(&tags, None, true).as_deref(),
            Some("v1.10.1-rc.1")
        );
        let only_1_9 = regex::Regex::new(r"^1\.9\.").unwrap();
        assert_eq!(
            newest_tag(&tags, Some(&only_1_9), false).as_deref(),
            Some("1.9.0")
        );
        assert!(newest_tag(&[], None, false).is_none());
    }
}
