//! `portcullis sim`: serve the API-exact simulators of SonarQube, Jira, ServiceNow, Aqua, an
//! OCI registry, GitHub and GitLab on 127.0.0.1 and print their URLs and credentials until interrupted;
//! `portcullis sim demo`: start the service against them and walk through three deploys (continue, manual review, terminate).

use anyhow::Context;
use serde_json::{Value, json};

use crate::adapters::AdapterConfig;
use crate::config;
use crate::serve::App;
use crate::sim::{self, Sims};

/// Flags of `portcullis sim`.
#[derive(Debug, clap::Args)]
pub(super) struct SimArgs {
    /// First port: SonarQube listens on it, Jira on the next, then ServiceNow, Aqua, the registry, GitHub, GitLab. 0 picks
    /// free ports.
    #[arg(long, default_value_t = 9100)]
    port: u16,
    #[command(subcommand)]
    command: Option<SimCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum SimCommand {
    /// Start the service against the simulators and walk through three deploys: one that
    /// continues, one sent to manual review, one terminated (critical CVE).
    Demo,
}

/// `portcullis demo`: the same walk-through as `portcullis sim demo`.
pub(super) fn demo_command() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(demo())
}

pub(super) fn run(args: &SimArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            None => serve(args.port).await,
            Some(SimCommand::Demo) => demo().await,
        }
    })
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let sims = sim::start(port).await?;
    print_sims(&sims);
    println!(
        "control     POST <url>/_sim/faults, /_sim/reset, /_sim/scenario/<name>; GET <url>/_sim/stats"
    );
    println!("(simulator credentials are public test values; press Ctrl-C to stop)");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

fn print_sims(sims: &Sims) {
    println!(
        "sonarqube   {}   token {}",
        sims.sonarqube.base_url,
        sim::sonarqube::TOKEN
    );
    println!(
        "jira        {}   basic {} / {}   pat {}",
        sims.jira.base_url,
        sim::jira::EMAIL,
        sim::jira::API_TOKEN,
        sim::jira::PAT
    );
    println!(
        "servicenow  {}   basic {} / {}",
        sims.servicenow.base_url,
        sim::servicenow::USER,
        sim::servicenow::PASSWORD
    );
    println!(
        "aqua        {}   login {} / {}",
        sims.aqua.base_url,
        sim::aqua::USER,
        sim::aqua::PASSWORD
    );
    println!(
        "registry    {}   basic {} / {} (token service at /token)   image {}@{}",
        sims.registry.base_url,
        sim::registry::USER,
        sim::registry::PASSWORD,
        sim::registry::REPOSITORY,
        sim::registry::seeded_digest()
    );
    println!(
        "github      {}   token {}   app {} (installation {})   repo {}@{}",
        sims.github.base_url,
        sim::github::TOKEN,
        sim::github::APP_ID,
        sim::github::INSTALLATION_ID,
        sim::github::REPOSITORY,
        sim::github::SEEDED_COMMIT
    );
    println!(
        "gitlab      {}   private-token {}   project {}@{}",
        sims.gitlab.base_url,
        sim::gitlab::TOKEN,
        sim::gitlab::PROJECT,
        sim::gitlab::SEEDED_COMMIT
    );
}

/// The demo's policy set: what a team would write for these four tools.
const DEMO_POLICIES: &str = r#"rules:
  - id: no-critical-cves
    title: No critical vulnerabilities in the deployed images (Aqua)
    category: vulnerabilities
    severity: critical
    description: A critical CVE in production is an incident waiting to happen.
    remediation: Patch or rebuild the image, then rescan it in Aqua.
    condition: {path: $.aqua.vulnerabilities.critical, op: "==", value: 0}
  - id: aqua-assurance
    title: Aqua scanned the deployed digest and its assurance policy allows it
    category: vulnerabilities
    severity: critical
    description: A scan of another digest (a re-pushed tag) or a disallowed image is not a pass.
    remediation: Rescan the deployed digest in Aqua and fix the failing assurance checks.
    condition: {path: $.aqua.all_passed, op: "==", value: true}
  - id: quality-gate
    title: The SonarQube quality gate of the deployed branch passed
    category: quality
    severity: high
    description: NONE (never analysed) and WARN are not a pass.
    remediation: Fix the failing conditions on new code and re-run the analysis.
    condition: {path: $.sonarqube.quality_gate.status, op: "==", value: OK}
  - id: change-approved
    title: The ServiceNow change is approved and scheduled
    category: change-management
    severity: high
    description: Raw approval and raw state both count; a rejected change drops back to New.
    remediation: Get the change approved and scheduled in ServiceNow.
    condition:
      all:
        - {path: $.servicenow.change.approval, op: "==", value: approved}
        - {path: $.servicenow.change.state, op: in, value: ["-2", "-1"]}
  - id: change-window
    title: The deploy is inside the change's planned window
    category: change-management
    severity: high
    description: The approval holds for the planned window only.
    remediation: Deploy inside the window or reschedule the change.
    condition: {path: $.servicenow.change, op: within_window, value: {start: start_date, end: end_date}}
  - id: release-ticket-done
    title: The release ticket is done
    category: change-management
    severity: high
    description: The Jira release ticket is in the done status category.
    remediation: Finish the release ticket's workflow in Jira.
    condition: {path: $.jira.all_done, op: "==", value: true}
"#;

fn adapters_yaml(sims: &Sims) -> String {
    format!(
        r#"
- {{kind: sonarqube, name: sonarqube, base_url: "{}", auth: {{type: bearer, token: {{value: "{}"}}}}}}
- {{kind: jira, name: jira, base_url: "{}", auth: {{type: basic, username: "{}", password: {{value: "{}"}}}}}}
- {{kind: servicenow, name: servicenow, base_url: "{}", auth: {{type: basic, username: "{}", password: {{value: "{}"}}}}}}
- {{kind: aqua, name: aqua, base_url: "{}", registries: [{{host: ghcr.io, name: GHCR}}], auth: {{type: login, username: "{}", password: {{value: "{}"}}}}}}
"#,
        sims.sonarqube.base_url,
        sim::sonarqube::TOKEN,
        sims.jira.base_url,
        sim::jira::EMAIL,
        sim::jira::API_TOKEN,
        sims.servicenow.base_url,
        sim::servicenow::USER,
        sim::servicenow::PASSWORD,
        sims.aqua.base_url,
        sim::aqua::USER,
        sim::aqua::PASSWORD,
    )
}

/// The three deploys: (what it is, application, image repository:tag, digest, branch).
fn deploys() -> [(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
); 3] {
    [
        (
            "a reviewed release from its release branch",
            "payments-api",
            "acme/payments-api:1.8.3",
            sim::aqua::DIGESTS[0].1,
            "release/1.8",
        ),
        (
            "the same image, but built from a branch whose quality gate failed",
            "payments-api",
            "acme/payments-api:1.8.3",
            sim::aqua::DIGESTS[0].1,
            "feature/risky",
        ),
        (
            "an image with Log4Shell and Spring4Shell in it",
            "orders-api",
            "acme/orders-api:2.0.0",
            sim::aqua::DIGESTS[1].1,
            "main",
        ),
    ]
}

async fn demo() -> anyhow::Result<()> {
    let sims = sim::start(0).await?;
    let dir = std::env::temp_dir().join(format!("portcullis-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let result = run_demo(&sims, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_demo(sims: &Sims, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("demo.yaml"), DEMO_POLICIES).context("cannot write the demo policy")?;
    let mut settings = config::load_from(None, Vec::<(String, String)>::new())?;
    settings.server.http_addr = "127.0.0.1:0".parse()?;
    settings.server.grpc_addr = "127.0.0.1:0".parse()?;
    settings.store.url = "sqlite::memory:".into();
    // The demo's log lives in memory and dies with it, so a key made for this run signs it.
    settings.audit.signing_key = Some(crate::secret::SecretSource::Value(
        crate::audit::checkpoint::CheckpointSigner::generate().private_pem()?,
    ));
    settings.policy.dir = Some(dir.to_path_buf());
    settings.adapters = serde_norway::from_str::<Vec<AdapterConfig>>(&adapters_yaml(sims))
        .context("demo adapter configuration")?;
    let app = App::build(settings).await?;
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    println!("Portcullis demo: the service at {base}, with these simulated tools:\n");
    print_sims(sims);
    println!(
        "\npolicy: no critical CVE (terminate), Aqua assurance (terminate), SonarQube quality gate,"
    );
    println!(
        "        ServiceNow change approved and in its window, Jira release ticket done (review)\n"
    );

    let client = reqwest::Client::new();
    for (i, (what, app_name, image, digest, branch)) in deploys().into_iter().enumerate() {
        let body = json!({
            "application": app_name,
            "environment": "prod",
            "images": [format!("ghcr.io/{image}@{digest}")],
            "sources": [{"repository": format!("github.com/acme/{app_name}"), "commit": "4f2a9c1e", "branch": branch}],
            "change_refs": {"jira_keys": ["OPS-42"], "servicenow_changes": ["CHG0030001"]},
            "triggered_by": "alice",
            "idempotency_key": format!("demo-{}-{i}", uuid::Uuid::new_v4()),
        });
        println!("── deploy {}: {what}", i + 1);
        println!("   {app_name} → prod, ghcr.io/{image} (branch {branch}, CHG0030001, OPS-42)");
        let decision: Value = client
            .post(format!("{base}/v1/checks"))
            .json(&body)
            .send()
            .await
            .context("cannot reach the demo service")?
            .json()
            .await
            .context("the demo service answered something that is not a decision")?;
        print_decision(&decision);
    }
    let _ = stop.send(());
    server
        .await
        .context("the demo service stopped abnormally")??;
    Ok(())
}

fn print_decision(d: &Value) {
    let verdict = d["verdict"].as_str().unwrap_or("?");
    let shown = match verdict {
        "continue" => "CONTINUE: the deploy may proceed".to_string(),
        "manual_review" => "MANUAL REVIEW: a person must approve it first".to_string(),
        "terminate" => "TERMINATE: the deploy must not proceed".to_string(),
        other => other.to_string(),
    };
    println!(
        "   verdict  {shown}   (decision {})",
        d["id"].as_str().unwrap_or("?")
    );
    let sources: Vec<String> = d["sources"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!(
                        "{} {} {} ms",
                        s["name"].as_str().unwrap_or("?"),
                        s["status"].as_str().unwrap_or("?"),
                        s["duration_ms"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("   evidence {}", sources.join(", "));
    for r in d["rule_results"].as_array().into_iter().flatten() {
        let outcome = r["outcome"].as_str().unwrap_or("?");
        let mark = match outcome {
            "pass" => "✓",
            "not_applicable" => "-",
            _ => "✗",
        };
        println!("   {mark} {}", r["title"].as_str().unwrap_or("?"));
        if outcome != "pass" && outcome != "not_applicable" {
            println!(
                "       {} ({})",
                r["reason"].as_str().unwrap_or(""),
                r["effect"].as_str().unwrap_or("")
            );
            println!("       fix: {}", r["remediation"].as_str().unwrap_or(""));
        }
    }
    println!();
}
