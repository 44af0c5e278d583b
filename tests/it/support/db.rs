//! A PostgreSQL schema of its own per test, in the database at `PORTCULLIS_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), dropped with everything in it when the
//! test ends, so tests run in parallel and leave nothing behind.

use sqlx::Connection;

pub fn test_database_url() -> String {
    std::env::var("PORTCULLIS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        let name = format!("portcullis_it_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&test_database_url())
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Self { name }
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
        format!(
            "{scheme}://{userinfo}{host_port}{path}{sep}options[search_path]={}",
            self.name
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
        // Drop cannot await: a thread with its own runtime drops the schema and is joined.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&test_database_url())
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
