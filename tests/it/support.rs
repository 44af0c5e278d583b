//! Test harness: `spawn_app()` and friends.

pub mod app;
pub mod fake_tool;
pub mod poll;

pub use app::{TestApp, spawn_app};
