//! The response cache every tool adapter shares: results keyed by what the fact depends on (a
//! digest, a project and branch, a change number), kept for a TTL, with concurrent identical
//! lookups coalesced into one upstream call. Written once here, not per adapter.
//!
//! Only successes are kept past their call: an error is handed to every caller that was waiting
//! for that call, and the next lookup asks the tool again. A coalesced caller shares the first
//! caller's call, so it also shares that call's deadline; the gate still bounds each caller by
//! its own deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::AdapterError;
use super::called::{self, Called, CalledUrl};

/// Entries kept before stale ones are swept out.
const SWEEP_AT: usize = 1024;

/// A call's result with what it noted of the URLs it called, handed to every caller that shared
/// it (a failed call's URL belongs in each one's record, not only in the first caller's).
type Call<V> = Shared<BoxFuture<'static, (Result<V, AdapterError>, Called)>>;

struct Entry<V: Clone> {
    started: Instant,
    call: Call<V>,
}

/// A TTL cache with coalescing. `ttl` zero keeps nothing but still coalesces calls in flight.
pub struct FactCache<V: Clone> {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry<V>>>,
}

impl<V: Clone> std::fmt::Debug for FactCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> FactCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value for `key`, or the result of the call in flight for it, or the result of
    /// `fetch` (which then serves every identical lookup that arrives while it runs).
    pub async fn get_or_fetch<F>(&self, key: &str, fetch: F) -> Result<V, AdapterError>
    where
        F: Future<Output = Result<V, AdapterError>> + Send + 'static,
    {
        let call = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let ttl = self.ttl;
            let usable = |e: &Entry<V>| match e.call.peek() {
                None => true,
                Some((Ok(_), _)) => now.saturating_duration_since(e.started) < ttl,
                Some((Err(_), _)) => false,
            };
            match entries.get(key).filter(|e| usable(e)) {
                Some(e) => e.call.clone(),
                None => {
                    if entries.len() >= SWEEP_AT {
                        entries.retain(|_, e| usable(e));
                    }
                    let call = async move {
                        let slot = CalledUrl::default();
                        let result = slot.scope(fetch).await;
                        (result, slot.snapshot())
                    }
                    .boxed()
                    .shared();
                    entries.insert(
                        key.to_string(),
                        Entry {
                            started: now,
                            call: call.clone(),
                        },
                    );
                    call
                }
            }
        };
        let (result, noted) = call.await;
        if result.is_err() {
            called::merge(&noted);
        }
        result
    }

    /// Forgets `key`, so the next lookup fetches again (new evidence was just submitted).
    pub fn invalidate(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Drops every cached answer (new evidence may change answers under several keys).
    pub fn invalidate_all(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting(
        calls: &Arc<AtomicUsize>,
        result: Result<u32, AdapterError>,
    ) -> impl Future<Output = Result<u32, AdapterError>> + Send + 'static {
        let calls = Arc::clone(calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            result
        }
    }

    // Paused time: each call's 20 ms (long enough for the second lookup to find it in flight)
    // passes at once.
    #[tokio::test(start_paused = true)]
    async fn identical_lookups_share_one_call_and_a_zero_ttl_keeps_nothing() {
        let cache = FactCache::new(Duration::from_secs(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let (a, b) = tokio::join!(
            cache.get_or_fetch("k", counting(&calls, Ok(1))),
            cache.get_or_fetch("k", counting(&calls, Ok(2))),
        );
        assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            cache
                .get_or_fetch("k", counting(&calls, Ok(3)))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            cache
                .get_or_fetch("other", counting(&calls, Ok(4)))
                .await
                .unwrap(),
            4
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // A zero TTL keeps nothing once the call is over.
        let uncached = FactCache::new(Duration::ZERO);
        assert_eq!(
            uncached
                .get_or_fetch("k", counting(&calls, Ok(5)))
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            uncached
                .get_or_fetch("k", counting(&calls, Ok(6)))
                .await
                .unwrap(),
            6
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_shared_but_not_kept() {
        let cache = FactCache::new(Duration::from_secs(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let err = AdapterError::Timeout { timeout_ms: 1 };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("k", counting(&calls, Err(err.clone()))),
            cache.get_or_fetch("k", counting(&calls, Ok(2))),
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(
            cache
                .get_or_fetch("k", counting(&calls, Ok(3)))
                .await
                .unwrap(),
            3
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
