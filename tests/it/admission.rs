//! The Kubernetes admission webhook over HTTP, with real `AdmissionReview` bodies (Pod,
//! Deployment, CronJob with init containers): uid echoed, `allowed`, and on denial code 403
//! with a message naming the image and what it lacks, from decisions the gate stored; the
//! age limit by the injected clock; and who may call: the API server's client certificate on
//! `admission.listener` or a token with the `admission` role, nobody else.

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::digest;
use crate::support::tls::https_client;
use crate::support::tls::{Ca, write_ca};
use crate::support::{Answer, TestApp};

/// Terminates the application `bad`, continues everything else.
const POLICY: &str = r#"rules:
  - id: not-the-bad-app
    title: The bad app never deploys
    category: test
    severity: critical
    description: A test rule.
    remediation: None.
    condition:
      path: $.request.application
      op: "!="
      value: bad
"#;

async fn app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", POLICY)])
        .admission(json!({
            "environments": {"payments-prod": "prod", "*-staging": "staging"},
            "break_glass_groups": ["sre"],
        }))
        .spawn()
        .await
}

async fn decide(app: &TestApp, application: &str, environment: &str, image: &str) -> Value {
    app.check(&json!({"application": application, "environment": environment, "images": [image]}))
        .await
        .json_with(StatusCode::CREATED)
}

fn review(
    uid: &str,
    kind: &str,
    namespace: &str,
    operation: &str,
    object: Value,
    old: Value,
) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid,
        "kind": {"group": if kind == "Pod" { "" } else { "apps" }, "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "requestKind": {"group": "", "version": "v1", "kind": kind},
        "name": "web", "namespace": namespace, "operation": operation,
        "userInfo": {"username": "alice@example.com", "uid": "u-1", "groups": ["developers", "system:authenticated"]},
        "object": object, "oldObject": old, "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}})
}

fn pod_spec(init: &str, app: &str) -> Value {
    json!({"initContainers": [{"name": "migrate", "image": init}],
           "containers": [{"name": "app", "image": app, "ports": [{"containerPort": 8080}]}]})
}

fn pod(init: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "payments-prod"},
           "spec": pod_spec(init, app)})
}

async fn admit(app: &TestApp, body: &Value) -> Value {
    let v = app.admission(None, body).await.json_with(StatusCode::OK);
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], body["request"]["uid"], "{v}");
    v["response"].clone()
}

#[tokio::test]
async fn pods_and_workloads_are_answered_from_stored_decisions() {
    let app = app().await;
    let good = format!("ghcr.io/acme/web@{}", digest('a'));
    let init = format!("ghcr.io/acme/migrate:1.0@{}", digest('b'));
    let banned = format!("ghcr.io/acme/bad@{}", digest('c'));
    let d = decide(&app, "web", "prod", &good).await;
    assert_eq!(d["verdict"], "continue");
    decide(&app, "web", "prod", &init).await;
    let t = decide(&app, "bad", "prod", &banned).await;
    assert_eq!(t["verdict"], "terminate");

    // A Pod whose every image has a continue decision for the namespace's environment.
    let r = admit(
        &app,
        &review(
            "uid-pod",
            "Pod",
            "payments-prod",
            "CREATE",
            pod(&init, &good),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        r["auditAnnotations"]["decisions"]
            .as_str()
            .unwrap()
            .contains(d["id"].as_str().unwrap()),
        "{r}"
    );

    // A Deployment whose init container is not pinned.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec("ghcr.io/acme/migrate:1.0", &good)}}});
    let r = admit(
        &app,
        &review(
            "uid-deploy",
            "Deployment",
            "payments-prod",
            "CREATE",
            deploy,
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.contains("`ghcr.io/acme/migrate:1.0` (spec.template.spec.initContainers[0] (migrate)) is not pinned by digest"), "{msg}");

    // A CronJob whose init container was terminated: the message links the decision.
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec(&banned, &good)}}}}});
    let r = admit(
        &app,
        &review(
            "uid-cron",
            "CronJob",
            "payments-prod",
            "CREATE",
            cron,
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the newest decision for `prod` is terminate"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("/v1/decisions/{}", t["id"].as_str().unwrap())),
        "{msg}"
    );

    // No decision for the digest; and a decision for prod does not admit into staging.
    let unknown = format!("ghcr.io/acme/web@{}", digest('d'));
    let r = admit(
        &app,
        &review(
            "uid-none",
            "Pod",
            "payments-prod",
            "CREATE",
            pod(&good, &unknown),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no decision for `prod`"),
        "{r}"
    );
    let r = admit(
        &app,
        &review(
            "uid-stg",
            "Pod",
            "web-staging",
            "CREATE",
            pod(&good, &good),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no decision for `staging`"),
        "{r}"
    );

    // A namespace no environment covers.
    let r = admit(
        &app,
        &review(
            "uid-ns",
            "Pod",
            "scratch",
            "CREATE",
            pod(&good, &good),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("maps to no environment"),
        "{r}"
    );
}

#[tokio::test]
async fn updates_check_only_new_images_and_deletes_pass() {
    let app = app().await;
    let good = format!("ghcr.io/acme/web@{}", digest('a'));
    let unknown = format!("ghcr.io/acme/web@{}", digest('d'));
    decide(&app, "web", "prod", &good).await;
    // A label change on a pod whose image predates the webhook: nothing new to check.
    let r = admit(
        &app,
        &review(
            "u1",
            "Pod",
            "payments-prod",
            "UPDATE",
            pod(&unknown, &unknown),
            pod(&unknown, &unknown),
        ),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // An in-place image swap to an image without a decision.
    let r = admit(
        &app,
        &review(
            "u2",
            "Pod",
            "payments-prod",
            "UPDATE",
            pod(&good, &unknown),
            pod(&good, &good),
        ),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    // `kubectl debug`: an ephemeral container arrives as a Pod UPDATE on the subresource.
    let mut debugged = pod(&good, &good);
    debugged["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox:latest"}]);
    let mut req = review(
        "u3",
        "Pod",
        "payments-prod",
        "UPDATE",
        debugged,
        pod(&good, &good),
    );
    req["request"]["subResource"] = json!("ephemeralcontainers");
    let r = admit(&app, &req).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("ephemeralContainers[0] (debugger)"),
        "{r}"
    );
    let r = admit(
        &app,
        &review(
            "u4",
            "Pod",
            "payments-prod",
            "DELETE",
            Value::Null,
            pod(&unknown, &unknown),
        ),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn exempt_namespaces_and_break_glass_are_honoured_and_recorded() {
    let app = app().await;
    let unknown = format!("ghcr.io/acme/web@{}", digest('d'));
    let r = admit(
        &app,
        &review(
            "e1",
            "Pod",
            "kube-system",
            "CREATE",
            pod(&unknown, &unknown),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["auditAnnotations"]["exempt"], "kube-system");

    let mut broken = pod(&unknown, &unknown);
    broken["metadata"]["annotations"] =
        json!({"portcullis.dev/break-glass": "INC-4711 payments down, hotfix"});
    // alice is not in `sre`: refused, and the refusal is part of the message.
    let r = admit(
        &app,
        &review(
            "b1",
            "Pod",
            "payments-prod",
            "CREATE",
            broken.clone(),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("break-glass annotation `portcullis.dev/break-glass` refused"),
        "{r}"
    );
    let mut req = review("b2", "Pod", "payments-prod", "CREATE", broken, Value::Null);
    req["request"]["userInfo"]["groups"] = json!(["sre"]);
    let r = admit(&app, &req).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(
        r["auditAnnotations"]["break-glass"],
        "INC-4711 payments down, hotfix"
    );
    assert_eq!(r["auditAnnotations"]["break-glass-by"], "alice@example.com");
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("portcullis break-glass by alice@example.com"),
        "{r}"
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("portcullis_admission_reviews_total{outcome=\"break_glass\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_admission_reviews_total{outcome=\"exempt\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn what_is_not_an_admission_review_is_refused() {
    let app = app().await;
    let r = app
        .http
        .post(app.url("/v1/admission"))
        .json(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = admit(
        &app,
        &review(
            "k1",
            "ConfigMap",
            "payments-prod",
            "CREATE",
            json!({"data": {}}),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    // Disabled by default.
    let plain = crate::support::spawn_app().await;
    let r = plain
        .http
        .post(plain.url("/v1/admission"))
        .json(&review(
            "d1",
            "Pod",
            "payments-prod",
            "CREATE",
            pod("a", "b"),
            Value::Null,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A decision counts until `admission.max_age` by the injected clock: the test sets the clock,
/// it never sleeps.
#[tokio::test]
async fn the_age_limit_reads_the_injected_clock() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-12T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = std::sync::Arc::new(portcullis::clock::ManualClock::new(start));
    let app = TestApp::builder()
        .policies(&[("p.yaml", POLICY)])
        .clock(clock.clone())
        .admission(json!({"environments": {"payments-prod": "prod"}, "max_age": "1h"}))
        .spawn()
        .await;
    let good = format!("ghcr.io/acme/web@{}", digest('a'));
    decide(&app, "web", "prod", &good).await;
    let req = review(
        "age-1",
        "Pod",
        "payments-prod",
        "CREATE",
        pod(&good, &good),
        Value::Null,
    );

    clock.set(start + chrono::Duration::minutes(59));
    let r = admit(&app, &req).await;
    assert_eq!(r["allowed"], true, "{r}");

    clock.set(start + chrono::Duration::minutes(61));
    let r = admit(&app, &req).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("is older than 1h"),
        "{r}"
    );
}

/// With tokens configured, `/v1/admission` on the main port answers only a token holding the
/// `admission` role (or `admin`): no token is a 401, another role a 403, and neither says
/// anything about decisions.
#[tokio::test]
async fn only_the_admission_role_gets_an_answer_on_the_main_port() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", POLICY)])
        .token("ci", "ci-token", vec![Role::Pipeline])
        .token("kube-apiserver", "apiserver-token", vec![Role::Admission])
        .admission(json!({"environments": {"payments-prod": "prod"}}))
        .spawn()
        .await;
    let good = format!("ghcr.io/acme/web@{}", digest('a'));
    let d = decide(&app, "web", "prod", &good).await;
    let id = d["id"].as_str().unwrap().to_string();
    let body = review(
        "auth-1",
        "Pod",
        "payments-prod",
        "CREATE",
        pod(&good, &good),
        Value::Null,
    );

    let r = Answer::read(
        "POST /v1/admission without a token",
        app.http
            .post(app.url("/v1/admission"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    assert!(
        !r.body.contains(&id) && !r.body.contains("allowed"),
        "{}",
        r.body
    );

    let r = app
        .post_as(Some("ci-token"), "/v1/admission", &body)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(r.body.contains("`admission` role"), "{}", r.body);
    assert!(
        !r.body.contains(&id) && !r.body.contains("allowed"),
        "{}",
        r.body
    );

    let v = app
        .post_as(Some("apiserver-token"), "/v1/admission", &body)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(v["response"]["uid"], "auth-1");
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // The admission role reads nothing else.
    app.get_as(Some("apiserver-token"), &format!("/v1/decisions/{id}"))
        .await
        .expect(StatusCode::FORBIDDEN);
}

/// `admission.listener`: HTTPS with the webhook's own certificate, serving only
/// `/v1/admission`, answering the API server's client certificate (a name of
/// `client_names`, from the client CA) or its `admission` token, and nobody else.
#[tokio::test]
async fn the_listener_answers_the_api_servers_certificate_or_token_only() {
    let serving = Ca::new("Portcullis webhook CA");
    let clients = Ca::new("API server client CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = serving.server().write(dir.path(), "webhook");
    let client_ca_file = write_ca(&clients, dir.path(), "client-ca");
    let app = TestApp::builder()
        .policies(&[("p.yaml", POLICY)])
        .token("ci", "ci-token", vec![Role::Pipeline])
        .token("kube-apiserver", "apiserver-token", vec![Role::Admission])
        .admission(json!({
            "environments": {"payments-prod": "prod"},
            "listener": {
                "addr": "127.0.0.1:0",
                "tls": {"cert_file": cert_file, "key_file": key_file,
                        "client_ca_file": client_ca_file, "client_auth": "optional"},
                "client_names": ["kube-apiserver.portcullis.invalid"],
            },
        }))
        .spawn()
        .await;
    let good = format!("ghcr.io/acme/web@{}", digest('a'));
    let d = decide(&app, "web", "prod", &good).await;
    let id = d["id"].as_str().unwrap().to_string();
    let body = review(
        "tls-1",
        "Pod",
        "payments-prod",
        "CREATE",
        pod(&good, &good),
        Value::Null,
    );
    let addr = app.admission_addr.expect("the listener is bound");
    let url = format!("https://localhost:{}/v1/admission", addr.port());
    let post = |client: reqwest::Client, token: Option<&'static str>| {
        let url = url.clone();
        let body = body.clone();
        async move {
            let rb = client.post(&url).json(&body);
            let rb = match token {
                Some(t) => rb.bearer_auth(t),
                None => rb,
            };
            Answer::read(format!("POST {url}"), rb.send().await.unwrap()).await
        }
    };

    let apiserver = clients.client("kube-apiserver.portcullis.invalid");
    let v = post(
        https_client(&serving, Some((&apiserver.cert_pem, &apiserver.key_pem))),
        None,
    )
    .await
    .json_with(StatusCode::OK);
    assert_eq!(v["response"]["uid"], "tls-1");
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // A certificate from the same CA naming someone else.
    let alice = clients.client("alice.example.com");
    let r = post(
        https_client(&serving, Some((&alice.cert_pem, &alice.key_pem))),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert!(
        !r.body.contains(&id) && !r.body.contains("allowed"),
        "{}",
        r.body
    );

    // No certificate: the token of the API server's kubeconfig, and only that role.
    let r = post(https_client(&serving, None), None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        !r.body.contains(&id) && !r.body.contains("allowed"),
        "{}",
        r.body
    );
    post(https_client(&serving, None), Some("ci-token"))
        .await
        .expect(StatusCode::FORBIDDEN);
    let v = post(https_client(&serving, None), Some("apiserver-token"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // A certificate from another CA does not complete the handshake.
    let stranger = Ca::new("Elsewhere").client("kube-apiserver.portcullis.invalid");
    assert!(
        https_client(&serving, Some((&stranger.cert_pem, &stranger.key_pem)))
            .post(&url)
            .json(&body)
            .send()
            .await
            .is_err()
    );

    // The listener serves the webhook and nothing else.
    let r = https_client(&serving, Some((&apiserver.cert_pem, &apiserver.key_pem)))
        .get(format!(
            "https://localhost:{}/v1/decisions/{id}",
            addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
