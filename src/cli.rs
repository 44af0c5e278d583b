//! The command line: `serve`, `check`, `policy lint|test`, `config check`, `token`, `audit`, `sim`. One file per
//! subcommand under `cli/`; `anyhow` is allowed here (the binary edge) and nowhere deeper.

mod audit_cmd;
mod check;
mod config_cmd;
mod policy_cmd;
mod serve_cmd;
mod sim;
mod token;

use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;

use clap::{Parser, Subcommand};

/// Process exit codes. A pipeline step acts on these, so they never change meaning; `check`
/// never exits 0 unless the verdict is continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The verdict is continue (or, for other commands, success).
    Ok = 0,
    /// An unexpected error: configuration, I/O, a bug. Nothing was decided.
    Error = 1,
    /// The input was invalid (flags, request fields, files). Fix it and retry.
    BadInput = 2,
    /// The verdict is terminate: the deploy must not proceed.
    Terminate = 3,
    /// A manual review was still pending when the deadline passed.
    ReviewPending = 4,
    /// The service could not be reached or could not decide.
    Unreachable = 5,
    /// `policy lint` / `policy test` found problems.
    PolicyProblems = 6,
    /// `audit verify` found the record altered, incomplete or not signed by the key.
    AuditProblems = 7,
    /// Stopped by SIGTERM or Ctrl-C (Argo CD Terminate, the Job's deadline, an eviction) before
    /// a final decision; 128 + 15, as a shell would report it.
    Interrupted = 143,
}

impl From<ExitCode> for ProcessExitCode {
    fn from(c: ExitCode) -> Self {
        ProcessExitCode::from(c as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A deployment firewall: continue, manual review or terminate, with evidence"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (gRPC + HTTP/JSON).
    Serve {
        /// Configuration file (YAML, TOML or JSON); `PORTCULLIS__…` variables override it.
        #[arg(long, short = 'c', env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Ask the gate about a deploy and wait for a final decision (for pipeline jobs).
    Check(Box<check::CheckArgs>),
    /// Work with policy files offline.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Validate configuration.
    Config {
        #[command(subcommand)]
        command: config_cmd::ConfigCommand,
    },
    /// Serve the simulators of SonarQube, Jira, ServiceNow and Aqua on 127.0.0.1.
    Sim(sim::SimArgs),
    /// Start the service against the simulators and walk through three deploys (continue,
    /// manual review, terminate on a critical CVE), printing the decisions and reasons.
    Demo,
    /// The signed decision log: make its signing key, print the public key, verify proofs and
    /// exports, render an export as an HTML or CSV report.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Create API tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve { config } => serve_cmd::run(config.as_deref()),
        Command::Check(args) => return check::run(*args),
        Command::Policy { command } => return policy_cmd::run(command),
        Command::Config { command } => config_cmd::run(command),
        Command::Token { command } => token::run(command),
        Command::Audit { command } => return audit_cmd::run(command),
        Command::Sim(args) => sim::run(&args),
        Command::Demo => sim::demo_command(),
    };
    match result {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::Error
        }
    }
}
