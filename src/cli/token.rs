//! `portcullis token generate|hash`: make API tokens and the hashes that go in configuration.

use std::io::Read;

use clap::Subcommand;

use crate::auth::{generate_token, hash_token};

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Print a new random token and the configuration entry for it.
    Generate {
        /// Name recorded as the principal, e.g. `spinnaker-prod`.
        #[arg(long, default_value = "pipeline")]
        name: String,
        /// Roles: pipeline, approver, auditor, admission, admin (comma separated).
        #[arg(long, default_value = "pipeline")]
        roles: String,
    },
    /// Print the SHA-256 of a token read from standard input.
    Hash,
}

pub(super) fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Generate { name, roles } => {
            let token = generate_token();
            let roles: Vec<&str> = roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .collect();
            for r in &roles {
                if !["pipeline", "approver", "auditor", "admission", "admin"].contains(r) {
                    anyhow::bail!(
                        "unknown role `{r}`: use pipeline, approver, auditor, admission or admin"
                    );
                }
            }
            println!("token (give this to the caller; it is not stored anywhere): {token}");
            println!();
            println!("configuration entry:");
            println!(
                "auth:\n  tokens:\n    - name: {name}\n      sha256: {}\n      roles: [{}]",
                hash_token(&token),
                roles.join(", ")
            );
        }
        TokenCommand::Hash => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            println!("{}", hash_token(s.trim()));
        }
    }
    Ok(())
}
