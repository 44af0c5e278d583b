//! `portcullis check`: the client a pipeline job runs. Sends one check over gRPC, follows the
//! decision until it is final or the deadline passes, prints a summary, writes a one-line reason
//! to the Kubernetes termination-message file, and exits with an [`ExitCode`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sha2::Digest as _;
use tokio::time::Instant;

use super::ExitCode;
use crate::client::{ClientError, GateClient, TlsOptions};
use crate::pb;

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// gRPC address of the service.
    #[arg(
        long,
        env = "PORTCULLIS_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// PEM bundle of CAs trusted for an `https://` server, besides the system's roots.
    #[arg(long, env = "PORTCULLIS_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// PEM client certificate, for a service that requires one (with --client-key).
    #[arg(long, env = "PORTCULLIS_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert (a mounted Secret).
    #[arg(long, env = "PORTCULLIS_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// API token (prefer --token-file or the environment over a flag).
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the API token (e.g. a mounted Secret).
    #[arg(long, env = "PORTCULLIS_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[arg(long, short = 'a', env = "PORTCULLIS_APPLICATION")]
    application: String,
    #[arg(long, short = 'e', env = "PORTCULLIS_ENVIRONMENT")]
    environment: String,
    /// Image reference, `registry/repo[:tag]@sha256:…` (repeatable).
    #[arg(
        long = "image",
        short = 'i',
        env = "PORTCULLIS_IMAGES",
        value_delimiter = ','
    )]
    images: Vec<String>,
    /// Source repository of the deploy.
    #[arg(long, env = "PORTCULLIS_REPOSITORY")]
    repository: Option<String>,
    /// Commit (revision) deployed.
    #[arg(long, env = "PORTCULLIS_REVISION")]
    revision: Option<String>,
    #[arg(long, env = "PORTCULLIS_BRANCH")]
    branch: Option<String>,
    /// Who wrote the commit (as approvers are named): they cannot approve the deploy.
    #[arg(long, env = "PORTCULLIS_COMMIT_AUTHOR")]
    commit_author: Option<String>,
    /// Jira issue key (repeatable).
    #[arg(long = "jira", env = "PORTCULLIS_JIRA_KEYS", value_delimiter = ',')]
    jira_keys: Vec<String>,
    /// ServiceNow change number (repeatable).
    #[arg(long = "change", env = "PORTCULLIS_CHANGES", value_delimiter = ',')]
    changes: Vec<String>,
    /// Free label `key=value` (repeatable).
    #[arg(long = "label", value_parser = key_value)]
    labels: Vec<(String, String)>,
    /// Caller kind recorded on the decision.
    #[arg(long, env = "PORTCULLIS_CALLER", default_value = "cli")]
    caller: String,
    /// Caller identifier `key=value` (repeatable), e.g. `job=presync-abc`.
    #[arg(long = "caller-id", value_parser = key_value)]
    caller_ids: Vec<(String, String)>,
    #[arg(long, env = "PORTCULLIS_TRIGGERED_BY")]
    triggered_by: Option<String>,
    /// Makes retries safe: the same key returns the same decision. Defaults to one derived from
    /// the attempt id and the deploy's content, when an attempt id is given.
    #[arg(long, env = "PORTCULLIS_IDEMPOTENCY_KEY")]
    idempotency_key: Option<String>,
    /// Identifies this attempt, e.g. the hook Job's name (the same across Argo CD's retries of
    /// one operation, new for each operation). A re-run of the same attempt re-attaches to the
    /// same decision instead of creating a second one.
    #[arg(long, env = "PORTCULLIS_ATTEMPT_ID")]
    attempt_id: Option<String>,
    /// Argo CD project (or any grouping), recorded with the caller's ids.
    #[arg(long, env = "PORTCULLIS_PROJECT")]
    project: Option<String>,
    /// How long to wait for a final decision (`10m`, `90s`).
    #[arg(long, env = "PORTCULLIS_DEADLINE", default_value = "10m", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// How long to keep trying while the service cannot be reached (at the start, or while
    /// waiting on a review) before giving up with exit code 5. Bounded separately from
    /// --deadline, so an unreachable service fails the step in minutes, not at the deadline.
    #[arg(long, env = "PORTCULLIS_CONNECT_WINDOW", default_value = "2m", value_parser = humantime::parse_duration)]
    connect_window: Duration,
    /// How often a waiting check says it is still waiting (or still cannot reach the service).
    #[arg(long, env = "PORTCULLIS_HEARTBEAT", default_value = "30s", value_parser = humantime::parse_duration, hide = true)]
    heartbeat: Duration,
    /// Where to write a one-line reason for Kubernetes (written only if its directory exists).
    #[arg(
        long,
        env = "PORTCULLIS_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    termination_log: PathBuf,
    /// Print the final decision as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Says that the service cannot be reached: at once, then at most once per heartbeat.
struct OutOfReach {
    server: String,
    heartbeat: Duration,
    window_ends: Instant,
    last_said: Option<Instant>,
}

impl OutOfReach {
    fn report(&mut self, e: &ClientError) {
        let now = Instant::now();
        if self
            .last_said
            .is_some_and(|t| now.duration_since(t) < self.heartbeat)
        {
            return;
        }
        let left = self.window_ends.saturating_duration_since(now);
        eprintln!(
            "cannot reach the service at `{}` ({e}); retrying for {}s more before giving up",
            self.server,
            left.as_secs()
        );
        self.last_said = Some(now);
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn interrupted() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The idempotency key: explicit, or derived from the attempt id and the deploy's content so
/// a re-run of the same attempt finds its decision and a different deploy never collides.
fn idempotency_key(args: &CheckArgs) -> String {
    if let Some(k) = &args.idempotency_key {
        return k.clone();
    }
    let Some(attempt) = &args.attempt_id else {
        return String::new();
    };
    let mut images: Vec<&str> = args.images.iter().map(|i| i.trim()).collect();
    images.sort_unstable();
    let material = format!(
        "{}\n{}\n{}\n{}\n{}",
        args.application,
        args.environment,
        args.revision.as_deref().unwrap_or(""),
        images.join(","),
        attempt
    );
    let digest = sha2::Sha256::digest(material.as_bytes());
    format!("attempt:{}", &hex::encode(digest)[..32])
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not `key=value`"))
}

pub(super) fn run(args: CheckArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::Error;
        }
    };
    let termination_log = args.termination_log.clone();
    let (code, line) = runtime.block_on(async move {
        tokio::select! {
            r = check(args) => r,
            () = interrupted() => (
                ExitCode::Interrupted,
                "interrupted before a final decision (SIGTERM): the deploy must not proceed".to_string(),
            ),
        }
    });
    // Kubernetes shows this file as the container's termination message, and Argo CD surfaces
    // it on the failed hook. Written only where the directory exists (inside a pod).
    if termination_log.parent().is_some_and(|d| d.is_dir()) {
        let _ = std::fs::write(&termination_log, &line);
    }
    code
}

async fn check(args: CheckArgs) -> (ExitCode, String) {
    let token = match read_token(&args) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return (ExitCode::BadInput, msg);
        }
    };
    let started = Instant::now();
    let deadline = started + args.deadline;
    let tls = TlsOptions {
        ca_cert: args.ca_cert.clone(),
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
    };
    // A connection attempt never outlasts the window.
    let connect_timeout = args
        .connect_window
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut client =
        match GateClient::with_tls(&args.server, token.as_deref(), connect_timeout, &tls) {
            Ok(c) => c,
            Err(e) => return fail(&e),
        };
    let request = build_request(&args);
    let mut reach = OutOfReach {
        server: args.server.clone(),
        heartbeat: args.heartbeat,
        window_ends: deadline.min(started + args.connect_window),
        last_said: None,
    };
    let decision = match client
        .check_reporting(request, reach.window_ends, |e| reach.report(e))
        .await
    {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    eprintln!("decision {}: {}", decision.id, decision.summary);
    let decision = if decision.status == pb::DecisionStatus::Pending as i32 {
        eprintln!(
            "waiting for a manual review of decision {} (until the deadline, {}) …",
            decision.id,
            humantime::format_duration(args.deadline)
        );
        let id = decision.id.clone();
        let mut watcher = client.clone();
        let window = args.connect_window;
        let reach = std::cell::RefCell::new(OutOfReach {
            last_said: None,
            window_ends: deadline,
            ..reach
        });
        let waiting = watcher.wait_final_reporting(
            &id,
            deadline,
            Some(window),
            |_| {},
            |e| {
                let mut r = reach.borrow_mut();
                if r.last_said.is_none() {
                    r.window_ends = deadline.min(Instant::now() + window);
                }
                r.report(e);
            },
        );
        tokio::pin!(waiting);
        // A heartbeat so the hook's log shows the gate is alive and how long is left.
        let mut heartbeat = tokio::time::interval(args.heartbeat);
        heartbeat.tick().await;
        let outcome = loop {
            tokio::select! {
                r = &mut waiting => break r,
                _ = heartbeat.tick() => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    eprintln!("still waiting for the review of decision {id} ({}s left)", left.as_secs());
                }
            }
        };
        match outcome {
            Ok(d) => d,
            Err(ClientError::Deadline) => {
                let latest = client.get(&decision.id).await.unwrap_or(decision);
                print_decision(&latest, args.json);
                let line = format!(
                    "manual review still pending at the deadline: decision {}",
                    latest.id
                );
                eprintln!("{line}");
                return (ExitCode::ReviewPending, line);
            }
            Err(e) => return fail(&e),
        }
    } else {
        decision
    };
    print_decision(&decision, args.json);
    let verdict = pb::Verdict::try_from(decision.verdict).unwrap_or(pb::Verdict::Unspecified);
    let code = match verdict {
        pb::Verdict::Continue => ExitCode::Ok,
        pb::Verdict::Terminate => ExitCode::Terminate,
        // A final decision is never manual review; if one arrives, it is not a continue.
        pb::Verdict::ManualReview => ExitCode::ReviewPending,
        pb::Verdict::Unspecified => ExitCode::Unreachable,
    };
    (
        code,
        format!("{} (decision {})", decision.summary, decision.id),
    )
}

fn fail(e: &ClientError) -> (ExitCode, String) {
    let code = match e {
        ClientError::BadInput(_) => ExitCode::BadInput,
        ClientError::Auth(_) | ClientError::Unreachable(_) | ClientError::Deadline => {
            ExitCode::Unreachable
        }
    };
    let line = e.to_string();
    eprintln!("error: {line}");
    (code, line)
}

fn read_token(args: &CheckArgs) -> Result<Option<String>, String> {
    if let Some(t) = &args.token {
        return Ok(Some(t.trim().to_string()));
    }
    match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("cannot read the token file `{}`: {e}", path.display())),
        None => Ok(None),
    }
}

fn build_request(args: &CheckArgs) -> pb::CheckRequest {
    let kind = match args.caller.as_str() {
        "spinnaker" => pb::CallerKind::Spinnaker,
        "argocd" => pb::CallerKind::Argocd,
        "servicenow" => pb::CallerKind::Servicenow,
        "api" => pb::CallerKind::Api,
        "rollouts" => pb::CallerKind::Rollouts,
        _ => pb::CallerKind::Cli,
    };
    // The revision is kept without a repository: dropping it would hide the deployed commit
    // from the rules that need it (SonarQube's analysis, separation of duties).
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let sources = if given(&args.repository) || given(&args.revision) {
        vec![pb::SourceRevision {
            repository: args.repository.clone().unwrap_or_default(),
            commit: args.revision.clone().unwrap_or_default(),
            branch: args.branch.clone().unwrap_or_default(),
            author: args.commit_author.clone().unwrap_or_default(),
        }]
    } else {
        Vec::new()
    };
    pb::CheckRequest {
        application: args.application.clone(),
        environment: args.environment.clone(),
        images: args
            .images
            .iter()
            .filter(|i| !i.trim().is_empty())
            .map(|i| pb::Image {
                reference: i.trim().to_string(),
                ..Default::default()
            })
            .collect(),
        sources,
        caller: Some(pb::Caller {
            kind: kind as i32,
            ids: args
                .caller_ids
                .iter()
                .cloned()
                .chain(
                    args.attempt_id
                        .iter()
                        .map(|a| ("attempt".to_string(), a.clone())),
                )
                .chain(
                    args.project
                        .iter()
                        .map(|p| ("project".to_string(), p.clone())),
                )
                .collect::<HashMap<_, _>>(),
        }),
        triggered_by: args.triggered_by.clone().unwrap_or_default(),
        change_refs: Some(pb::ChangeRefs {
            jira_keys: args.jira_keys.clone(),
            servicenow_changes: args.changes.clone(),
        }),
        labels: args.labels.iter().cloned().collect(),
        idempotency_key: idempotency_key(args),
    }
}

fn print_decision(d: &pb::Decision, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision_json(d)).unwrap_or_default()
        );
        return;
    }
    let verdict = pb::Verdict::try_from(d.verdict).unwrap_or(pb::Verdict::Unspecified);
    println!("verdict:  {}", verdict_str(verdict));
    println!("decision: {}", d.id);
    println!("policy:   {}", d.policy_version);
    println!("summary:  {}", d.summary);
    for r in &d.rule_results {
        let effect = pb::Verdict::try_from(r.effect).unwrap_or(pb::Verdict::Unspecified);
        if r.outcome == "pass" {
            continue;
        }
        println!();
        println!(
            "  [{}] {} ({}, {})",
            verdict_str(effect),
            r.rule_id,
            r.severity,
            r.outcome
        );
        println!("    {}", r.title);
        println!("    why: {}", r.reason);
        if !r.remediation.is_empty() {
            println!("    fix: {}", r.remediation);
        }
    }
    let passed = d
        .rule_results
        .iter()
        .filter(|r| r.outcome == "pass")
        .count();
    println!();
    println!(
        "{passed} of {} applicable rules passed",
        d.rule_results.len()
    );
    for s in d.sources.iter().filter(|s| s.status != "ok") {
        println!(
            "evidence `{}` unavailable ({}): {}",
            s.name, s.reason_code, s.message
        );
    }
    if verdict == pb::Verdict::ManualReview {
        println!(
            "approve or reject: POST /v1/decisions/{}/review (role approver)",
            d.id
        );
    }
}

fn verdict_str(v: pb::Verdict) -> &'static str {
    match v {
        pb::Verdict::Continue => "continue",
        pb::Verdict::ManualReview => "manual_review",
        pb::Verdict::Terminate => "terminate",
        pb::Verdict::Unspecified => "unspecified",
    }
}

fn decision_json(d: &pb::Decision) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "verdict": verdict_str(pb::Verdict::try_from(d.verdict).unwrap_or(pb::Verdict::Unspecified)),
        "status": if d.status == pb::DecisionStatus::Final as i32 { "final" } else { "pending" },
        "summary": d.summary,
        "policy_version": d.policy_version,
        "rule_results": d.rule_results.iter().map(|r| serde_json::json!({
            "rule_id": r.rule_id, "outcome": r.outcome, "severity": r.severity,
            "effect": verdict_str(pb::Verdict::try_from(r.effect).unwrap_or(pb::Verdict::Unspecified)),
            "reason": r.reason, "remediation": r.remediation,
        })).collect::<Vec<_>>(),
    })
}
