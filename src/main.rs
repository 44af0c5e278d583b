//! The `portcullis` binary: parse the command line and hand over to `portcullis::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = portcullis::cli::Cli::parse();
    portcullis::cli::run(cli).into()
}
