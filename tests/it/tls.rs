//! TLS, tried the way an enterprise deploys it: tools behind a private CA (trusted through
//! `tls.ca_file`, or named as an untrusted issuer), expired and wrong-host certificates, tools
//! requiring client certificates; and the service itself serving HTTPS and gRPC over TLS,
//! picking up a rotated certificate without a restart, and refusing clients without a
//! certificate when it requires one. Certificates are made in the test (`support::tls`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis::adapters::{AdapterConfig, AdapterError};
use portcullis::client::{ClientError, GateClient, TlsOptions};
use portcullis::config::Settings;
use portcullis::tls::server::TlsListener;
use portcullis::tls::{ClientAuth, ServerTls, ServerTlsConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::TestAppBuilder;
use crate::support::app::start;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;
use crate::support::tls::https_client;
use crate::support::tls::{Ca, TlsTool, write_ca};

const STATUS_POLICY: &str = "rules:\n  - id: tool-green\n    title: The tool is green\n    category: test\n    severity: critical\n    condition: { path: $.tool.state, op: \"==\", value: green }\n";

fn tool_adapter(url: &str, tls: Option<Value>) -> Value {
    let mut a = json!({"kind": "http", "name": "tool", "url": url, "timeout": "2s", "retries": 0, "extract": {"state": "$.state"}});
    if let Some(tls) = tls {
        a["tls"] = tls;
    }
    a
}

/// Builds the `kind: http` adapter and asks it once, as the gate would.
async fn collect(config: Value) -> Result<portcullis::adapters::Facts, AdapterError> {
    let config: AdapterConfig = serde_json::from_value(config).unwrap();
    let adapter = crate::support::build_adapters(&[config]).remove(0);
    let request = crate::support::fixtures::request(|_| {});
    adapter
        .collect(
            &request,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await
}

fn tls_problem(e: &AdapterError) -> &'static str {
    match e {
        AdapterError::Tls { problem, .. } => problem,
        other => panic!("expected a tls failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tool_behind_a_private_ca_is_trusted_through_its_bundle_and_only_then() {
    let ca = Ca::new("Acme Private Root");
    let tool = TlsTool::start(&ca.server(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_ca(&ca, dir.path(), "acme-root");

    let facts = collect(tool_adapter(
        &tool.url("localhost"),
        Some(json!({"ca_file": bundle})),
    ))
    .await
    .unwrap();
    assert_eq!(facts.document["state"], "green");

    let e = collect(tool_adapter(&tool.url("localhost"), None))
        .await
        .unwrap_err();
    assert_eq!(tls_problem(&e), "untrusted issuer");
    assert_eq!(e.reason_code(), "adapter.tls");
    assert!(e.to_string().contains("tls.ca_file"), "{e}");

    // Through the gate: the evidence names the problem and the deploy does not continue.
    let app = TestApp::builder()
        .policies(&[("p.yaml", STATUS_POLICY)])
        .adapter(tool_adapter(&tool.url("localhost"), None))
        .spawn()
        .await;
    let d = app
        .check(&good_check("tls-untrusted"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(d["sources"][0]["status"], "unavailable", "{d}");
    assert_eq!(d["sources"][0]["reason"], "unreachable", "{d}");
    let message = d["sources"][0]["message"].as_str().unwrap();
    assert!(message.contains("untrusted issuer"), "{message}");
    let rule_reason = d["rule_results"][0]["reason"].as_str().unwrap();
    assert!(rule_reason.contains("untrusted issuer"), "{rule_reason}");
}

#[tokio::test]
async fn an_expired_certificate_is_named() {
    let ca = Ca::new("Acme Private Root");
    let tool = TlsTool::start(&ca.expired_server(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_ca(&ca, dir.path(), "acme-root");
    let e = collect(tool_adapter(
        &tool.url("localhost"),
        Some(json!({"ca_file": bundle})),
    ))
    .await
    .unwrap_err();
    assert_eq!(tls_problem(&e), "expired certificate");
}

#[tokio::test]
async fn a_certificate_for_another_host_is_a_hostname_mismatch() {
    let ca = Ca::new("Acme Private Root");
    let tool = TlsTool::start(&ca.other_host_server(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_ca(&ca, dir.path(), "acme-root");
    let e = collect(tool_adapter(
        &tool.url("127.0.0.1"),
        Some(json!({"ca_file": bundle})),
    ))
    .await
    .unwrap_err();
    assert_eq!(tls_problem(&e), "hostname mismatch");
}

#[tokio::test]
async fn a_tool_requiring_mtls_gets_the_configured_client_certificate() {
    let ca = Ca::new("Acme Private Root");
    let clients = Ca::new("Acme Clients");
    let tool = TlsTool::start(&ca.server(), Some(&clients)).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_ca(&ca, dir.path(), "acme-root");
    let (cert, key) = clients.client("portcullis").write(dir.path(), "client");

    let e = collect(tool_adapter(
        &tool.url("localhost"),
        Some(json!({"ca_file": bundle})),
    ))
    .await
    .unwrap_err();
    assert_eq!(tls_problem(&e), "client certificate refused");

    // The key is a secret source: here a mounted file.
    let facts = collect(tool_adapter(
        &tool.url("localhost"),
        Some(json!({"ca_file": bundle, "client_cert_file": cert, "client_key": {"file": key}})),
    ))
    .await
    .unwrap();
    assert_eq!(facts.document["state"], "green");

    // A certificate from a CA the tool does not trust is refused too.
    let (other_cert, other_key) = Ca::new("Elsewhere").client("x").write(dir.path(), "other");
    let e = collect(tool_adapter(
        &tool.url("localhost"),
        Some(json!({"ca_file": bundle, "client_cert_file": other_cert, "client_key": {"file": other_key}})),
    ))
    .await
    .unwrap_err();
    assert_eq!(tls_problem(&e), "client certificate refused");
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_stops_start_up() {
    let ca = Ca::new("Acme Private Root");
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = ca.client("a").write(dir.path(), "a");
    let (_, key) = ca.client("b").write(dir.path(), "b");
    let config: AdapterConfig = serde_json::from_value(tool_adapter(
        "https://localhost:1/status",
        Some(json!({"client_cert_file": cert, "client_key": {"file": key}})),
    ))
    .unwrap();
    let e = crate::support::try_build_adapters(&[config])
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not go together"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
}

/// The service's TLS files in `dir`, reloaded every 50 ms.
fn server_tls(dir: &Path, client_ca: Option<&Ca>) -> ServerTlsConfig {
    ServerTlsConfig {
        cert_file: dir.join("server.crt"),
        key_file: dir.join("server.key"),
        client_ca_file: client_ca.map(|ca| write_ca(ca, dir, "client-ca")),
        client_auth: client_ca.map(|_| ClientAuth::Required),
        reload_interval: Duration::from_millis(50),
    }
}

async fn spawn_tls(builder: TestAppBuilder, tls: ServerTlsConfig) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings: Settings = builder.settings(dir.path());
    settings.server.tls = Some(tls);
    start(settings, dir, None).await
}

/// The leaf certificate a TLS server at `addr` presents, by DER.
async fn presented(addr: std::net::SocketAddr, ca: &Ca) -> Vec<u8> {
    use rustls_pki_types::ServerName;
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls_pki_types::CertificateDer::from(rcgen_der(&ca.pem()));
    roots.add(ca_der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn rcgen_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn the_service_serves_https_and_grpc_over_tls_and_reloads_a_rotated_certificate() {
    let ca = Ca::new("Acme Private Root");
    let files = tempfile::tempdir().unwrap();
    let first = ca.server();
    first.write(files.path(), "server");
    let app = spawn_tls(TestApp::builder(), server_tls(files.path(), None)).await;

    let https = https_client(&ca, None);
    let resp = https
        .get(format!(
            "https://localhost:{}/healthz",
            app.http_addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        reqwest::get(format!("http://{}/healthz", app.http_addr))
            .await
            .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(&ca, dir.path(), "ca");
    let tls = TlsOptions {
        ca_cert: Some(ca_file),
        ..TlsOptions::default()
    };
    let server = format!("https://localhost:{}", app.grpc_addr.port());
    let mut grpc = GateClient::with_tls(&server, None, Duration::from_secs(5), &tls).unwrap();
    let d = grpc.get("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap_err();
    assert!(
        matches!(d, ClientError::BadInput(_)),
        "a NOT_FOUND answer over TLS: {d:?}"
    );

    // Without the CA the client names the problem.
    let mut untrusted = GateClient::new(&server, None, Duration::from_secs(5)).unwrap();
    let e = untrusted
        .get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("untrusted issuer"), "{e}");

    assert_eq!(presented(app.http_addr, &ca).await, first.der());
    assert_eq!(presented(app.grpc_addr, &ca).await, first.der());

    // Rotate as a Secret mount does: new content swapped in by rename.
    let second = ca.server();
    let staging = tempfile::tempdir_in(files.path()).unwrap();
    let (cert, key) = second.write(staging.path(), "server");
    std::fs::rename(key, files.path().join("server.key")).unwrap();
    std::fs::rename(cert, files.path().join("server.crt")).unwrap();
    let want = second.der();
    for (what, addr) in [("http", app.http_addr), ("grpc", app.grpc_addr)] {
        eventually(
            Duration::from_secs(10),
            &format!("the {what} listener presenting the rotated certificate"),
            || {
                let ca = &ca;
                let want = want.clone();
                async move { (presented(addr, ca).await == want).then_some(()) }
            },
        )
        .await;
    }
    // Connections made after the rotation still work end to end.
    let resp = https
        .get(format!(
            "https://localhost:{}/healthz",
            app.http_addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_certificate_in_use() {
    let ca = Ca::new("Acme Private Root");
    let files = tempfile::tempdir().unwrap();
    let first = ca.server();
    first.write(files.path(), "server");
    let tls = ServerTls::load(&server_tls(files.path(), None), &[b"http/1.1"]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let _incoming = TlsListener::new(listener, Arc::clone(&tls), "test", stop.clone()).unwrap();

    // A new certificate whose key has not arrived yet (a non-atomic copy, half done).
    let second = ca.server();
    std::fs::write(files.path().join("server.crt"), &second.cert_pem).unwrap();
    let e = tls.reload().unwrap_err();
    assert!(e.to_string().contains("do not go together"), "{e}");
    assert_eq!(presented(addr, &ca).await, first.der());

    // The key arrives: the next reload takes the pair.
    std::fs::write(files.path().join("server.key"), &second.key_pem).unwrap();
    assert_eq!(tls.reload(), Ok(true));
    assert_eq!(tls.reload(), Ok(false), "unchanged files are not reloaded");
    assert_eq!(presented(addr, &ca).await, second.der());
    stop.cancel();
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one() {
    let ca = Ca::new("Acme Private Root");
    let clients = Ca::new("Acme Pipelines");
    let files = tempfile::tempdir().unwrap();
    ca.server().write(files.path(), "server");
    let app = spawn_tls(TestApp::builder(), server_tls(files.path(), Some(&clients))).await;
    let url = format!("https://localhost:{}/healthz", app.http_addr.port());

    assert!(https_client(&ca, None).get(&url).send().await.is_err());
    let pipeline = clients.client("argocd");
    let resp = https_client(&ca, Some((&pipeline.cert_pem, &pipeline.key_pem)))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(&ca, dir.path(), "ca");
    let (cert, key) = pipeline.write(dir.path(), "pipeline");
    let server = format!("https://localhost:{}", app.grpc_addr.port());
    let mut without = GateClient::with_tls(
        &server,
        None,
        Duration::from_secs(5),
        &TlsOptions {
            ca_cert: Some(ca_file.clone()),
            ..TlsOptions::default()
        },
    )
    .unwrap();
    let e = without.get("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
    let mut with = GateClient::with_tls(
        &server,
        None,
        Duration::from_secs(5),
        &TlsOptions {
            ca_cert: Some(ca_file),
            client_cert: Some(cert),
            client_key: Some(key),
        },
    )
    .unwrap();
    let e = with.get("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap_err();
    assert!(
        matches!(e, ClientError::BadInput(_)),
        "NOT_FOUND over mTLS: {e:?}"
    );
}
