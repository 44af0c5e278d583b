//! `portcullis policy lint DIR` and `portcullis policy test CASES…`: the offline policy tools.
//! They call the same library functions the service and the project's own tests use.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::ExitCode;
use crate::config;
use crate::policy::{cases, lint};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Validate a directory of policy files; problems are printed as `file:line:col: message`.
    ///
    /// With `--config FILE`, rules are checked against the adapter instances that configuration
    /// defines: a rule reading an instance it does not define is an error.
    Lint {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// A configuration file (as for `serve`) whose adapter instance names the rules may read.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run policy test cases (YAML): evidence in, expected verdict and reasons out.
    Test {
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
}

pub(super) fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Lint {
            dir,
            format,
            config,
        } => {
            let instances = match config.as_deref().map(|file| config::load(Some(file))) {
                None => None,
                Some(Ok(settings)) => Some(
                    settings
                        .adapters
                        .iter()
                        .map(|a| a.name().to_string())
                        .collect::<Vec<_>>(),
                ),
                Some(Err(e)) => {
                    eprintln!("error: --config: {e}");
                    return ExitCode::BadInput;
                }
            };
            let report = lint::lint_dir_for(&dir, instances.as_deref());
            match format {
                Format::Human => print!("{}", report.render_human()),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                ),
            }
            if report.has_errors() {
                ExitCode::PolicyProblems
            } else {
                ExitCode::Ok
            }
        }
        PolicyCommand::Test { cases: paths } => {
            let report = cases::run_case_files(&paths);
            print!("{}", report.render_human());
            if report.all_passed() {
                ExitCode::Ok
            } else {
                ExitCode::PolicyProblems
            }
        }
    }
}
