//! Test harness: `spawn_app()` and friends.

pub mod answer;
pub mod app;
pub mod db;
pub mod fake_tool;
pub mod fixtures;
pub mod oci;
pub mod orca;
pub mod poll;
pub mod proxy;
pub mod tls;

pub use answer::Answer;
pub use app::{TEST_SIGNING_KEY, TestApp, spawn_app};

/// The instant a test sets the service's clock to (`TestAppBuilder::clock`), so what the service
/// compares with the time (report ages, deadlines, replay windows) never reads the wall clock.
pub fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A manual clock standing at [`t0`].
pub fn clock_at_t0() -> std::sync::Arc<portcullis::clock::ManualClock> {
    std::sync::Arc::new(portcullis::clock::ManualClock::new(t0()))
}

/// Adapters built from `configs` on a manual clock at [`t0`]: a retry's wait moves it, taking
/// no real time.
pub fn try_build_adapters(
    configs: &[portcullis::adapters::AdapterConfig],
) -> Result<
    Vec<std::sync::Arc<dyn portcullis::adapters::Adapter>>,
    portcullis::adapters::AdapterBuildError,
> {
    let clock: std::sync::Arc<dyn portcullis::clock::Clock> = clock_at_t0();
    portcullis::adapters::build(configs, &clock)
}

/// [`try_build_adapters`], for configurations that build.
pub fn build_adapters(
    configs: &[portcullis::adapters::AdapterConfig],
) -> Vec<std::sync::Arc<dyn portcullis::adapters::Adapter>> {
    try_build_adapters(configs).unwrap()
}
