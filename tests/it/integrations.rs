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
