//! One mapping from sqlx errors to `StoreError`, shared by every backend, so the same fault gets
//! the same reason code whichever database is behind the store.
//!
//! Messages never include the connection URL (it may hold a password); sqlx's own messages for
//! these variants do not either.

use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;

use super::StoreError;

pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::Database(db) => from_database(db.as_ref()),
        E::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        E::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
        E::WorkerCrashed => StoreError::Unavailable("the database worker stopped".into()),
        E::Io(io) => StoreError::Unavailable(format!("i/o error: {io}")),
        E::Tls(t) => StoreError::Unavailable(format!("tls error: {t}")),
        E::Protocol(p) => StoreError::Unavailable(format!("protocol error: {p}")),
        E::Configuration(c) => StoreError::Unavailable(format!("bad configuration: {c}")),
        // The query ran but what came back is not what the schema promises.
        e @ (E::RowNotFound
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Decode(_)) => StoreError::Corrupt(e.to_string()),
        E::Migrate(m) => from_migrate(*m),
        // sqlx::Error is non-exhaustive; whatever else comes means "cannot serve right now",
        // which fails closed.
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(crate) fn from_migrate(e: MigrateError) -> StoreError {
    match e {
        // Could not talk to the database at all: the same as any other query failing.
        MigrateError::Execute(e) => from_sqlx(e),
        MigrateError::VersionMissing(v) => StoreError::Migration(format!(
            "the database has migration {v}, which this build does not know: it was migrated by a newer portcullis"
        )),
        MigrateError::VersionMismatch(v) => StoreError::Migration(format!(
            "migration {v} was edited after it was applied; applied migrations must never change"
        )),
        MigrateError::Dirty(v) => StoreError::Migration(format!(
            "migration {v} failed part-way earlier; repair or restore the database"
        )),
        other => StoreError::Migration(other.to_string()),
    }
}

fn from_database(db: &dyn DatabaseError) -> StoreError {
    if db.is_unique_violation() {
        return StoreError::Conflict(db.message().to_string());
    }
    if is_sqlite_corruption(db) {
        return StoreError::Corrupt(db.message().to_string());
    }
    StoreError::Unavailable(format!("database error: {}", db.message()))
}

/// SQLITE_CORRUPT (11) or SQLITE_NOTADB (26), in primary or extended form. Checked only on
/// SQLite errors: PostgreSQL's SQLSTATE codes are different strings that could parse as numbers.
fn is_sqlite_corruption(db: &dyn DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 11 | 26))
}
