//! A PostgreSQL schema of its own per test: the same file the store suite uses, so there is one
//! copy of it (`src/store/test_schema.rs`). `PgSchema::create()` is `None` where no server is
//! reachable (the test returns early; `scripts/test.sh` says so loudly) unless
//! `PORTCULLIS_REQUIRE_POSTGRES` is set, as CI does.

#[path = "../../../src/store/test_schema.rs"]
mod test_schema;

pub use test_schema::PgSchema;
