//! `portcullis config check FILE`: load a configuration the way `serve` would, and validate
//! everything that can be checked without listening (tokens, policies, adapters).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::adapters;
use crate::auth::Authenticator;
use crate::config;
use crate::policy::PolicySet;

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate a configuration file (with `PORTCULLIS__…` overrides applied).
    Check { file: PathBuf },
}

pub(super) fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { file } = cmd;
    let settings = config::load(Some(&file))?;
    let auth = Authenticator::new(&settings.auth.tokens).context("auth.tokens")?;
    let policies = match &settings.policy.dir {
        Some(dir) => {
            PolicySet::load_dir(dir).with_context(|| format!("policy.dir `{}`", dir.display()))?
        }
        None => PolicySet::builtin()?,
    };
    // Built to validate the configuration only: no tool is called.
    let clock: std::sync::Arc<dyn crate::clock::Clock> =
        std::sync::Arc::new(crate::clock::SystemClock);
    let adapters = adapters::build(&settings.adapters, &clock).context("adapters")?;
    let signer = crate::serve::signing_key(&settings.audit)?;
    if auth.is_open() {
        for addr in [settings.server.http_addr, settings.server.grpc_addr] {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "no auth.tokens are configured, so `{addr}` must be a loopback address"
                );
            }
        }
    }
    println!("{}: ok", file.display());
    println!(
        "  http {}  grpc {}",
        settings.server.http_addr, settings.server.grpc_addr
    );
    println!("  store {}", redact_url(&settings.store.url));
    println!("  audit checkpoints signed by {}", signer.key_id());
    println!(
        "  policies: {} rules, version {}",
        policies.rule_count(),
        policies.version()
    );
    println!(
        "  adapters: {}",
        adapters
            .iter()
            .map(|a| format!("{} ({})", a.name(), a.kind()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  tokens: {}", settings.auth.tokens.len());
    for warning in auth.warnings() {
        println!("  warning: {warning}");
    }
    Ok(())
}

/// Hides a password in a store URL before printing it.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
