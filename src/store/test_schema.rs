//! A PostgreSQL schema of its own per test, shared by the store suite (`store/tests.rs`) and the
//! integration tests (`tests/it/support/db.rs` includes this very file), so tests run in parallel
//! and leave nothing behind.
//!
//! The server is `PORTCULLIS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where none is reachable, [`PgSchema::create`] says
//! so on stderr and returns `None`, and the test returns early: `scripts/test.sh` prints a banner
//! naming the skip, so a machine with only Rust still runs the rest of the suite. CI sets
//! `PORTCULLIS_REQUIRE_POSTGRES=1`, which turns the skip into a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support fails loudly"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "shared by two crates; each includer uses a different part"
)]

use sqlx::Connection;

/// Where the test server is.
pub fn test_database_url() -> String {
    std::env::var("PORTCULLIS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a missing server must fail the test instead of skipping it.
fn postgres_required() -> bool {
    std::env::var("PORTCULLIS_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A fresh schema, dropped with everything in it when this value is.
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    /// A new schema, or `None` (after saying so) where no server is reachable and
    /// `PORTCULLIS_REQUIRE_POSTGRES` is not set.
    pub async fn create() -> Option<Self> {
        let base = test_database_url();
        let mut admin = match sqlx::PgConnection::connect(&base).await {
            Ok(conn) => conn,
            Err(err) if !postgres_required() => {
                eprintln!(
                    "SKIPPED: no PostgreSQL reachable at PORTCULLIS_TEST_DATABASE_URL ({err}); \
                     this PostgreSQL-backed test did not run"
                );
                record_skip();
                return None;
            }
            Err(err) => panic!(
                "PORTCULLIS_REQUIRE_POSTGRES is set but PostgreSQL is not reachable at \
                 PORTCULLIS_TEST_DATABASE_URL: {err}"
            ),
        };
        let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Some(Self { name })
    }

    /// The store URL for this schema, reaching PostgreSQL at `host_port` (the real server, or a
    /// proxy in front of it).
    pub fn url_via(&self, host_port: &str) -> String {
        let base = test_database_url();
        let (scheme, rest) = base.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        let sep = if path.contains('?') { '&' } else { '?' };
        // Connections are named after the schema, so dropping it can end the ones a test left
        // open (a background job's transaction) instead of waiting on their locks.
        format!(
            "{scheme}://{userinfo}{host_port}{path}{sep}options[search_path]={name}&application_name={name}",
            name = self.name
        )
    }

    /// The store URL for this schema on the real server.
    pub fn url(&self) -> String {
        self.url_via(&self.server_addr())
    }

    /// `host:port` of the test server, for a proxy to forward to.
    pub fn server_addr(&self) -> String {
        let base = test_database_url();
        let rest = base.split_once("://").unwrap().1;
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host_port.contains(':') {
            host_port.to_string()
        } else {
            format!("{host_port}:5432")
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: a thread with its own small runtime drops the schema and is joined,
        // so the schema is gone before the test is reported.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&test_database_url())
                    .await
                    .unwrap();
                // The test's runtime is blocked on this thread: a service it started cannot
                // finish a transaction it has open, so end its connections first.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .execute(&mut admin)
                .await
                .unwrap();
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            });
        });
        let _ = cleanup.join();
    }
}

/// Appends this test's name (libtest names the thread after the test) to the file
/// `PORTCULLIS_PG_SKIPPED_FILE` names: `scripts/test.sh` sets it under `target/` and lists the
/// skips in a banner, since nextest hides a passing test's stderr and a port that answers while
/// the login fails is not caught by the script's TCP probe.
fn record_skip() {
    use std::io::Write as _;
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
