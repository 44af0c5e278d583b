//! `portcullis sim`: serve the API-exact simulators of SonarQube, Jira, ServiceNow and Aqua on
//! 127.0.0.1 and print their URLs and credentials until interrupted.

use anyhow::Context;

use crate::sim;

/// Flags of `portcullis sim`.
#[derive(Debug, clap::Args)]
pub(super) struct SimArgs {
    /// First port: SonarQube listens on it, Jira on the next, then ServiceNow, then Aqua. 0 picks
    /// free ports.
    #[arg(long, default_value_t = 9100)]
    port: u16,
}

pub(super) fn run(args: &SimArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sims = sim::start(args.port).await?;
        println!("sonarqube   {}   token {}", sims.sonarqube.base_url, sim::sonarqube::TOKEN);
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
            "control     POST <url>/_sim/faults, /_sim/reset, /_sim/scenario/<name>; GET <url>/_sim/stats"
        );
        println!("(simulator credentials are public test values; press Ctrl-C to stop)");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        Ok(())
    })
}
