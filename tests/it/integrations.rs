//! What users paste into Argo CD and Argo Rollouts agrees with the code: exit codes, deadlines,
//! delete policies, and the verdict strings the analysis conditions test. (CI also validates the
//! manifests against Kubernetes schemas and lints the charts: `.ci/k8s_check.py`.)

use std::path::PathBuf;

use portcullis::cli::ExitCode;
use serde_json::Value;

fn load(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn duration_secs(s: &str) -> u64 {
    humantime::parse_duration(s).unwrap().as_secs()
}

const NON_ZERO_CHECK_CODES: [ExitCode; 6] = [
    ExitCode::Error,
    ExitCode::BadInput,
    ExitCode::Terminate,
    ExitCode::ReviewPending,
    ExitCode::Unreachable,
    ExitCode::Interrupted,
];

#[test]
fn the_presync_job_fails_on_every_non_continue_exit_code_and_outlives_the_client() {
    let job = load("integrations/argocd/presync-job.yaml");
    let annotations = &job["metadata"]["annotations"];
    assert_eq!(annotations["argocd.argoproj.io/hook"], "PreSync");
    let delete = annotations["argocd.argoproj.io/hook-delete-policy"]
        .as_str()
        .unwrap();
    assert!(
        !delete.contains("HookFailed"),
        "a failed gate must keep its logs"
    );
    assert!(job["metadata"]["generateName"].is_string());
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let rules = job["spec"]["podFailurePolicy"]["rules"].as_array().unwrap();
    let fail_job = rules.iter().find(|r| r["action"] == "FailJob").unwrap();
    let mut codes: Vec<u64> = fail_job["onExitCodes"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    codes.sort_unstable();
    let mut want: Vec<u64> = NON_ZERO_CHECK_CODES.iter().map(|c| *c as u64).collect();
    want.sort_unstable();
    assert_eq!(codes, want);

    let args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let deadline = args
        .iter()
        .filter_map(|a| a.as_str()?.strip_prefix("--deadline="))
        .next()
        .unwrap();
    let active = job["spec"]["activeDeadlineSeconds"].as_u64().unwrap();
    assert!(
        active > duration_secs(deadline) + 60,
        "the Job must outlive the client's deadline"
    );
}

#[test]
fn the_library_chart_defaults_keep_the_same_invariants() {
    let values = load("integrations/argocd/portcullis-gate/values.yaml");
    let g = &values["portcullisGate"];
    let active = g["job"]["activeDeadlineSeconds"].as_u64().unwrap();
    assert!(active > duration_secs(g["check"]["deadline"].as_str().unwrap()) + 60);
    assert!(
        !g["hook"]["deletePolicy"]
            .as_str()
            .unwrap()
            .contains("HookFailed")
    );
    let tpl = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("integrations/argocd/portcullis-gate/templates/_job.tpl"),
    )
    .unwrap();
    let want: Vec<String> = NON_ZERO_CHECK_CODES
        .iter()
        .map(|c| (*c as u8).to_string())
        .collect();
    assert!(
        tpl.contains(&format!("values: [{}]", want.join(", "))),
        "FailJob exit codes drifted"
    );
}

#[test]
fn the_analysis_template_polls_without_the_fail_open_trap() {
    let t = load("integrations/rollouts/analysis-template.yaml");
    for m in t["spec"]["metrics"].as_array().unwrap() {
        if m["count"].as_u64().unwrap_or(1) > 1 {
            assert_eq!(
                m["consecutiveSuccessLimit"], 1,
                "polling without consecutiveSuccessLimit: 1 fails open"
            );
        }
        assert_eq!(m["successCondition"], "result.verdict == \"continue\"");
        assert_eq!(m["failureCondition"], "result.verdict == \"terminate\"");
        assert!(
            m["provider"]["web"]["url"]
                .as_str()
                .unwrap()
                .ends_with("/v1/analysis")
        );
    }
}

#[test]
fn the_exit_code_table_documents_every_code() {
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd/README.md"),
    )
    .unwrap();
    for code in NON_ZERO_CHECK_CODES.iter().chain([ExitCode::Ok].iter()) {
        assert!(
            readme.contains(&format!("| {} |", *code as u8)),
            "exit code {} missing from the table",
            *code as u8
        );
    }
}

/// The trigger fields the shipped stages send: a git trigger's, else the first SCM entry of a CI
/// build trigger's `buildInfo`.
const TRIGGER_REPOSITORY: &str = "${trigger.slug != null ? trigger.project + '/' + trigger.slug : (trigger.buildInfo?.scm?.^[true]?.remoteUrl ?: '')}";
const TRIGGER_REVISION: &str = "${trigger.hash ?: (trigger.buildInfo?.scm?.^[true]?.sha1 ?: '')}";
const TRIGGER_BRANCH: &str = "${trigger.branch ?: (trigger.buildInfo?.scm?.^[true]?.branch ?: '')}";
const TRIGGER_AUTHOR: &str = "${trigger.buildInfo?.scm?.^[true]?.committer ?: ''}";

/// Resolves the SpEL the Spinnaker examples use, as Orca would for one execution.
fn spel(text: &str) -> String {
    text.replace("${execution.id}", "01HXEXAMPLE")
        .replace("${execution.application}", "payments")
        .replace("${execution.name}", "deploy-prod")
        .replace("${trigger.user}", "alice")
        .replace(TRIGGER_REPOSITORY, "acme/payments")
        .replace(TRIGGER_REVISION, "0123456789abcdef0123456789abcdef01234567")
        .replace(TRIGGER_BRANCH, "main")
        .replace(TRIGGER_AUTHOR, "bob")
        .replace("${parameterValues['gate']}", "production")
        .replace("${parameterValues['environment']}", "prod")
        .replace(
            "${parameterValues['images']}",
            "ghcr.io/acme/payments@sha256:3f5a9c0e7b1d2a4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d",
        )
        .replace("${parameterValues['changeRefs']}", "CHG0030001")
        .replace("${parameters['change']}", "CHG0030001")
}

fn stage_from(
    entry: &Value,
    base: &str,
    payload: crate::support::orca::Payload,
) -> crate::support::orca::Stage {
    use crate::support::orca::{Resolution, Stage};
    let rebase = |u: &str| u.replace("https://portcullis.example.com", base);
    let list = |k: &str| entry[k].as_str().unwrap_or("").to_string();
    assert_eq!(entry["statusUrlResolution"], "webhookResponse");
    Stage {
        url: rebase(entry["url"].as_str().unwrap()),
        payload,
        custom_headers: vec![("Authorization".into(), "Bearer pc_spinnaker".into())],
        resolution: Resolution::WebhookResponse(
            entry["statusUrlJsonPath"].as_str().unwrap().into(),
        ),
        status_json_path: entry["statusJsonPath"].as_str().unwrap().into(),
        progress_json_path: entry["progressJsonPath"].as_str().map(str::to_string),
        success_statuses: list("successStatuses"),
        canceled_statuses: list("canceledStatuses"),
        terminal_statuses: list("terminalStatuses"),
        fail_fast_status_codes: vec![504],
        retry_status_codes: vec![],
        cancel_endpoint: entry["cancelEndpoint"].as_str().map(rebase),
        cancel_payload: None,
        create_retry: std::time::Duration::from_millis(20),
        poll_every: std::time::Duration::from_millis(20),
        monitor_timeout: std::time::Duration::from_secs(10),
    }
}

const SPINNAKER_CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";

#[tokio::test]
async fn the_shipped_spinnaker_stages_work_against_the_service() {
    use crate::support::orca::{Next, Outcome, Payload};
    use portcullis::auth::Role;
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", SPINNAKER_CONTINUE)])
        .token("spinnaker", "pc_spinnaker", vec![Role::Pipeline])
        .spawn()
        .await;
    let base = app.url("");

    // The preconfigured stage: its payload is a string template.
    let orca = load("integrations/spinnaker/orca-local.yml");
    let entry = &orca["webhook"]["preconfigured"][0];
    let body = spel(entry["payload"].as_str().unwrap());
    let stage = stage_from(
        entry,
        &base,
        Payload::Text {
            body,
            content_type: "application/json".into(),
        },
    );
    let run = stage.run(|_, _| Next::Keep).await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert_eq!(run.last_monitor_body["verdict"], "continue");
    assert_deployed_commit(&app, &run.last_monitor_body).await;

    // The plain Webhook stage: its payload is an object (each value evaluated, then encoded).
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integrations/spinnaker/webhook-stage.json"),
    )
    .unwrap();
    let plain: Value = serde_json::from_str(&text).unwrap();
    let mut payload: Value = serde_json::from_str(&spel(&plain["payload"].to_string())).unwrap();
    payload["artifacts"] = serde_json::json!([{"type": "docker/image", "reference": "ghcr.io/acme/payments@sha256:3f5a9c0e7b1d2a4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d"}]);
    let stage = stage_from(&plain, &base, Payload::Json(payload));
    let run = stage.run(|_, _| Next::Keep).await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    // The image came from the Spinnaker artifact.
    let id = run.last_monitor_body["decisionId"].as_str().unwrap();
    let d: Value = app
        .get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["request"]["images"][0]["registry"], "ghcr.io", "{d}");
    assert_eq!(d["request"]["caller"]["kind"], "spinnaker");
    assert_deployed_commit(&app, &run.last_monitor_body).await;
}

/// The decision behind a Spinnaker status names the trigger's repository, commit and author.
async fn assert_deployed_commit(app: &crate::support::TestApp, status: &Value) {
    let id = status["decisionId"].as_str().unwrap();
    let d = app.decision(id).await.json_with(reqwest::StatusCode::OK);
    let source = &d["request"]["sources"][0];
    assert_eq!(source["repository"], "acme/payments", "{d}");
    assert_eq!(
        source["commit"], "0123456789abcdef0123456789abcdef01234567",
        "{d}"
    );
    assert_eq!(source["branch"], "main", "{d}");
    assert_eq!(source["author"], "bob", "{d}");
}

#[test]
fn the_spinnaker_status_lists_match_the_service_vocabulary() {
    use portcullis::contracts::spinnaker::status;
    let orca = load("integrations/spinnaker/orca-local.yml");
    let entry = &orca["webhook"]["preconfigured"][0];
    assert_eq!(entry["successStatuses"], status::APPROVED);
    assert_eq!(entry["canceledStatuses"], status::CANCELED);
    let terminal: Vec<&str> = entry["terminalStatuses"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    for s in [status::REJECTED, status::TERMINATED, status::EXPIRED] {
        assert!(terminal.contains(&s), "{s} missing from terminalStatuses");
    }
    assert!(
        !terminal.contains(&status::AWAITING_APPROVAL),
        "a waiting status must be in no list"
    );
}

#[test]
fn the_shipped_argocd_manifests_name_the_deployed_repository_and_revision() {
    let job = load("integrations/argocd/presync-job.yaml");
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for flag in ["--repository=", "--revision="] {
        assert!(args.iter().any(|a| a.starts_with(flag)), "{flag}: {args:?}");
    }
    let tpl = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("integrations/argocd/portcullis-gate/templates/_job.tpl"),
    )
    .unwrap();
    assert!(tpl.contains("- --repository={{ required"), "{tpl}");
    assert!(tpl.contains("- --revision={{ required"), "{tpl}");
    let app = load("integrations/argocd/application.yaml");
    let params = app["spec"]["source"]["helm"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["value"].clone())
    };
    assert_eq!(
        param("portcullisGate.check.revision"),
        Some(Value::from("$ARGOCD_APP_REVISION"))
    );
    assert_eq!(
        param("portcullisGate.check.repository"),
        Some(Value::from("$ARGOCD_APP_SOURCE_REPO_URL"))
    );
}
