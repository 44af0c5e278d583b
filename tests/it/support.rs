//! Test harness: `spawn_app()` and friends.

pub mod answer;
pub mod app;
pub mod db;
pub mod fake_tool;
pub mod oci;
pub mod orca;
pub mod poll;
pub mod proxy;
pub mod tls;

pub use answer::Answer;
pub use app::{TEST_SIGNING_KEY, TestApp, spawn_app};
