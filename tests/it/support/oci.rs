//! Pushing images, cosign signatures and in-toto attestations to the registry simulator through
//! its real push API (token flow, monolithic blob upload, manifest PUT), signed with keys the
//! test generates, as a release pipeline would.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use portcullis::sim;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A fresh ECDSA P-256 key pair (as `cosign generate-key-pair` makes) and its PEM public key.
pub fn key() -> (p256::ecdsa::SigningKey, String) {
    let sk = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>()).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    (sk, pem)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn der_b64(key: &p256::ecdsa::SigningKey, message: &[u8]) -> String {
    let sig: p256::ecdsa::DerSignature = key.sign(message);
    STANDARD.encode(sig.as_bytes())
}

/// DSSE over an in-toto statement.
pub fn envelope(key: &p256::ecdsa::SigningKey, statement: &Value) -> Value {
    let body = serde_json::to_vec(statement).unwrap();
    let t = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {t} {} ", t.len(), body.len()).into_bytes();
    pae.extend_from_slice(&body);
    json!({"payloadType": t, "payload": STANDARD.encode(&body),
           "signatures": [{"keyid": "", "sig": der_b64(key, &pae)}]})
}

/// SLSA v1 provenance for `subject` built from `repository` at `commit` by GitHub Actions.
pub fn provenance(subject: &str, repository: &str, commit: &str) -> Value {
    json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": subject.strip_prefix("sha256:").unwrap()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://github.com/actions/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": format!("https://{repository}"), "ref": "refs/heads/main", "path": ".github/workflows/release.yml"}},
            "resolvedDependencies": [{"uri": format!("git+https://{repository}@refs/heads/main"), "digest": {"gitCommit": commit}}]},
            "runDetails": {"builder": {"id": "https://github.com/acme/ci/.github/workflows/release.yml@refs/heads/main"}}}})
}

/// A client of the simulator's push API, as the robot account.
pub struct Pusher {
    base: String,
    http: reqwest::Client,
}

impl Pusher {
    pub fn new(registry: &sim::SimHandle) -> Self {
        Self {
            base: registry.base_url.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn token(&self, repo: &str) -> String {
        let r = self
            .http
            .get(format!("{}/token", self.base))
            .query(&[
                ("service", sim::registry::SERVICE),
                ("scope", &format!("repository:{repo}:pull,push")),
            ])
            .basic_auth(sim::registry::USER, Some(sim::registry::PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn blob(&self, repo: &str, bytes: Vec<u8>) -> Value {
        let digest = digest_of(&bytes);
        let size = bytes.len();
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .query(&[("digest", &digest)])
            .bearer_auth(self.token(repo).await)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        json!({"digest": digest, "size": size})
    }

    pub async fn manifest(&self, repo: &str, reference: &str, media: &str, doc: &Value) -> String {
        let bytes = serde_json::to_vec(doc).unwrap();
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .bearer_auth(self.token(repo).await)
            .header("content-type", media)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        digest_of(&bytes)
    }

    /// A one-layer image tagged `tag`; `seed` makes its digest unique.
    pub async fn image(&self, repo: &str, tag: &str, seed: &str) -> String {
        let config = self
            .blob(repo, format!("{{\"seed\":\"{seed}\"}}").into_bytes())
            .await;
        let layer = self.blob(repo, format!("layer {seed}").into_bytes()).await;
        let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"]}]});
        self.manifest(repo, tag, MANIFEST, &doc).await
    }

    async fn attachment(
        &self,
        repo: &str,
        tag: &str,
        layer_media: &str,
        payload: Vec<u8>,
        annotations: Value,
    ) {
        let config = self.blob(repo, b"{}".to_vec()).await;
        let layer = self.blob(repo, payload).await;
        let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": layer_media, "digest": layer["digest"], "size": layer["size"], "annotations": annotations}]});
        self.manifest(repo, tag, MANIFEST, &doc).await;
    }

    /// A cosign `.sig` for `digest` whose payload names `signed` (normally the same digest);
    /// `tamper` changes the payload after signing.
    pub async fn sign(
        &self,
        repo: &str,
        digest: &str,
        key: &p256::ecdsa::SigningKey,
        signed: &str,
        tamper: bool,
    ) {
        let payload = serde_json::to_vec(&json!({"critical": {"identity": {"docker-reference": format!("ghcr.io/{repo}")},
            "image": {"docker-manifest-digest": signed}, "type": "cosign container image signature"}, "optional": null}))
        .unwrap();
        let sig = der_b64(key, &payload);
        let payload = if tamper {
            String::from_utf8(payload)
                .unwrap()
                .replace("optional\":null", "optional\":{}")
                .into_bytes()
        } else {
            payload
        };
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        self.attachment(
            repo,
            &tag,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            payload,
            json!({"dev.cosignproject.cosign/signature": sig}),
        )
        .await;
    }

    /// A cosign `.att` with `statement` signed as DSSE.
    pub async fn attest(
        &self,
        repo: &str,
        digest: &str,
        key: &p256::ecdsa::SigningKey,
        statement: &Value,
    ) {
        let env = serde_json::to_vec(&envelope(key, statement)).unwrap();
        let tag = format!("{}.att", digest.replacen(':', "-", 1));
        self.attachment(
            repo,
            &tag,
            "application/vnd.dsse.envelope.v1+json",
            env,
            json!({"predicateType": statement["predicateType"]}),
        )
        .await;
    }

    /// A cosign v3 signature: a Sigstore bundle (DSSE, public-key material) pushed as an OCI 1.1
    /// referrer of `digest`.
    pub async fn sign_referrer(&self, repo: &str, digest: &str, key: &p256::ecdsa::SigningKey) {
        let statement = json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "", "digest": {"sha256": digest.strip_prefix("sha256:").unwrap()}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}});
        let bundle = json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "release"}},
            "dsseEnvelope": envelope(key, &statement)});
        let config = self.blob(repo, b"{}".to_vec()).await;
        let layer = self.blob(repo, serde_json::to_vec(&bundle).unwrap()).await;
        let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": layer["digest"], "size": layer["size"]}],
            "subject": {"mediaType": MANIFEST, "digest": digest, "size": 0},
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}});
        let referrer = self
            .manifest(repo, &format!("sig-{}", &digest[7..19]), MANIFEST, &doc)
            .await;
        // What a client does on a registry without the referrers API: keep the fallback index.
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": MANIFEST, "digest": referrer, "size": serde_json::to_vec(&doc).unwrap().len(),
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]});
        self.manifest(
            repo,
            &digest.replacen(':', "-", 1),
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await;
    }
}
