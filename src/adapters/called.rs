//! Which URL an adapter call was at, for the record of a call that failed: when evidence is
//! missing, the URL that did not answer is what an auditor needs first.
//!
//! The gate gives each adapter call's task a [`CalledUrl`] slot (`CalledUrl::scope`); the shared
//! HTTP client notes in it every URL it calls and the one whose call failed, always without
//! credentials (`redact::redact_url`). A slot rather than a field on every `AdapterError`: the
//! gate's own deadline can cancel a call mid-flight, and the slot still holds the URL in flight.
//! Code outside a scope (a follower's client, a unit test) notes nothing.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

tokio::task_local! {
    static SLOT: CalledUrl;
}

/// What a call noted: the last URL it started, and the first whose call failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Called {
    pub started: Option<String>,
    pub failed: Option<String>,
}

/// One adapter call's slot, shared between the call's task and whoever reads it afterwards.
#[derive(Debug, Clone, Default)]
pub struct CalledUrl(Arc<Mutex<Called>>);

impl CalledUrl {
    /// Runs `work` with this slot as the one the HTTP client notes into.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        SLOT.scope(self.clone(), work).await
    }

    /// The URL to record for a failed call: the one that failed, else the one in flight.
    pub fn url(&self) -> Option<String> {
        let called = self.snapshot();
        called.failed.or(called.started)
    }

    pub fn snapshot(&self) -> Called {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Called)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

fn with_slot(f: impl FnOnce(&mut Called)) {
    // Outside a scope there is nobody to tell.
    let _ = SLOT.try_with(|slot| slot.update(f));
}

/// The HTTP client is about to call `url` (already without credentials).
pub(crate) fn started(url: &str) {
    with_slot(|c| c.started = Some(url.to_string()));
}

/// The call to `url` failed; the first failure is the one that is kept.
pub(crate) fn failed(url: &str) {
    with_slot(|c| {
        c.failed.get_or_insert_with(|| url.to_string());
    });
}

/// Notes what another task's call noted, for a caller that shared that call (the cache's
/// coalescing).
pub(crate) fn merge(other: &Called) {
    with_slot(|c| {
        if let Some(url) = &other.started {
            c.started = Some(url.clone());
        }
        if let Some(url) = &other.failed {
            c.failed.get_or_insert_with(|| url.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_is_kept_over_later_calls_and_nothing_leaks_outside_a_scope() {
        let slot = CalledUrl::default();
        slot.scope(async {
            started("https://a.example/one");
            failed("https://a.example/one");
            started("https://a.example/two");
            failed("https://a.example/two");
        })
        .await;
        assert_eq!(slot.url().as_deref(), Some("https://a.example/one"));
        // No scope: noted nowhere, and no panic.
        started("https://b.example/");
        assert_eq!(
            slot.snapshot().started.as_deref(),
            Some("https://a.example/two")
        );
    }

    #[tokio::test]
    async fn the_call_in_flight_is_the_url_without_a_failure() {
        let slot = CalledUrl::default();
        slot.scope(async { started("https://a.example/slow") })
            .await;
        assert_eq!(slot.url().as_deref(), Some("https://a.example/slow"));
    }

    #[tokio::test]
    async fn a_shared_call_is_merged_into_the_callers_slot() {
        let slot = CalledUrl::default();
        let other = Called {
            started: Some("https://a.example/x".into()),
            failed: Some("https://a.example/x".into()),
        };
        slot.scope(async { merge(&other) }).await;
        assert_eq!(slot.snapshot(), other);
    }
}
