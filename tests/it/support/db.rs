//! A PostgreSQL schema of its own per test: the same file the store suite uses, so there is one
//! copy of it (`src/store/test_schema.rs`). `PgSchema::create()` is `None` where no server is
//! reachable (the test returns early) unless `PORTCULLIS_REQUIRE_POSTGRES` is set, as CI does;
//! a skip is recorded in the file `PORTCULLIS_PG_SKIPPED_FILE` names, for `scripts/test.sh`'s
//! banner.

#[path = "../../../src/store/test_schema.rs"]
mod test_schema;

pub use test_schema::PgSchema;
