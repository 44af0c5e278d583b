//! A PostgreSQL schema of its own per test: the same file the store suite uses, so there is one
//! copy of it (`src/store/test_schema.rs`). `PgSchema::create()` is `None` where no server is
//! reachable (the test returns early) unless `PORTCULLIS_REQUIRE_POSTGRES` is set, as CI does.
//! A test that skips appends its name to the file `PORTCULLIS_PG_SKIPPED_FILE` names
//! (`scripts/test.sh` sets it under `target/` and prints a banner listing them): nextest hides a
//! passing test's stderr, and a port that answers while the login fails is not caught by the
//! script's TCP probe.

use std::io::Write;

#[path = "../../../src/store/test_schema.rs"]
mod test_schema;

/// [`test_schema::PgSchema`], recording a skip where the script can see it.
pub struct PgSchema(test_schema::PgSchema);

impl PgSchema {
    /// A new schema, or `None` (said on stderr and recorded in `PORTCULLIS_PG_SKIPPED_FILE`)
    /// where no server is reachable and `PORTCULLIS_REQUIRE_POSTGRES` is not set.
    pub async fn create() -> Option<Self> {
        let schema = test_schema::PgSchema::create().await;
        if schema.is_none() {
            record_skip();
        }
        schema.map(Self)
    }
}

impl std::ops::Deref for PgSchema {
    type Target = test_schema::PgSchema;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Appends this test's name (libtest names the thread after the test) to the skip file.
fn record_skip() {
    let Some(path) = std::env::var_os("PORTCULLIS_PG_SKIPPED_FILE") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("a PostgreSQL-backed test")
        .to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    match file {
        // One write per line: with `append`, tests skipping at once do not interleave.
        Ok(mut f) => {
            let _ = f.write_all(format!("{name}\n").as_bytes());
        }
        Err(e) => eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy()),
    }
}
