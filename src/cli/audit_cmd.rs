//! `portcullis audit keygen|public-key`: make the key pair that signs the decision log's
//! checkpoints, and print the public key a verifier needs.

use std::path::PathBuf;

use clap::Subcommand;

use crate::audit::checkpoint::CheckpointSigner;
use crate::config;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Generate an Ed25519 key pair and print it once: the private key (PKCS#8 PEM) for
    /// `audit.signing_key`, the public key (SPKI PEM) and its id for verifiers.
    Keygen,
    /// Print the public key (SPKI PEM) of the configured `audit.signing_key`.
    PublicKey {
        /// Configuration file (YAML, TOML or JSON); `PORTCULLIS__…` variables override it.
        #[arg(long, short = 'c', env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub(super) fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Keygen => {
            let signer = CheckpointSigner::generate();
            println!("# key id: {}", signer.key_id());
            println!(
                "# The private key below is printed once and stored nowhere: put it in a secret \
                 (a file or an environment variable) and point `audit.signing_key` at it."
            );
            print!("{}", signer.private_pem()?.expose());
            println!("# Public key, for `portcullis audit verify --public-key` and auditors:");
            print!("{}", signer.public_pem()?);
        }
        AuditCommand::PublicKey { config } => {
            let settings = config::load(config.as_deref())?;
            let signer = crate::serve::signing_key(&settings.audit)?;
            eprintln!("key id: {}", signer.key_id());
            print!("{}", signer.public_pem()?);
        }
    }
    Ok(())
}
