//! Dictionaries that packed bodies are compressed with (both backends). One gate's decisions
//! repeat the same keys, rule texts and evidence, which zstd without a dictionary learns anew in
//! every body.
//! A dictionary trained from the store's own recent `created` events holds that shared text
//! once, so each body packs to what is particular to it: in `benches/slo.rs` a decision's
//! `created` event went from ≈ 3.6 KB packed to ≈ 0.5 KB, and a decision's whole footprint from
//! ≈ 6.7 KB to ≈ 3.3 KB.
//!
//! A dictionary's id is zstd's, derived from its content, and every frame packed with it names
//! it, so a packed body says which dictionary it needs. Dictionaries are stored in
//! `pack_dictionaries` (SQLite migration 0016, PostgreSQL 0015) and never deleted: they are
//! small, and old rows need them. This process keeps every dictionary it has loaded or trained
//! in a registry by id, which unpacking reads; a frame naming an id the registry lacks is
//! `store.corrupt`. PostgreSQL replicas each train their own: a replica that reads a frame
//! naming one it lacks loads it from the table first (`unknown_ids`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use super::StoreError;
use super::packed;

/// The largest dictionary trained. Measured on `benches/slo.rs`'s decisions (zstd level 1): 64
/// samples and 32 KB packed a `created` event to ≈ 230 bytes; 64 KB needs many more samples.
pub(crate) const MAX_SIZE: usize = 32 * 1024;

/// How many recent `created` events a dictionary is trained from (a real check's is ≈ 17 KB).
/// Training holds them and zstd's tables in memory for a moment: 64 kept the service's peak
/// resident set within a few MiB, where 384 added ≈ 20 MiB for no better a dictionary.
pub(crate) const SAMPLES: i64 = 64;

/// A dictionary to pack with: its id and its bytes.
#[derive(Clone)]
pub(crate) struct Dictionary {
    pub(crate) id: u32,
    pub(crate) bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A registered dictionary, with zstd's decoding tables built once.
pub(crate) struct Registered {
    bytes: Arc<[u8]>,
    pub(crate) decoder: zstd::dict::DecoderDictionary<'static>,
}

static REGISTRY: LazyLock<RwLock<HashMap<u32, Arc<Registered>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Makes `bytes` a dictionary this process can unpack with, and returns it for packing.
pub(crate) fn register(bytes: &[u8]) -> Result<Dictionary, StoreError> {
    let Some(id) = zstd::zstd_safe::get_dict_id_from_dict(bytes).map(u32::from) else {
        return Err(StoreError::Corrupt(
            "a stored pack dictionary is not a zstd dictionary".to_string(),
        ));
    };
    let mut registry = REGISTRY
        .write()
        .map_err(|_| StoreError::Corrupt("the pack dictionary registry is poisoned".into()))?;
    if let Some(known) = registry.get(&id) {
        if *known.bytes != *bytes {
            // Ids are a hash of the content: two different dictionaries with one id is a
            // collision (or an edited row), and packing with either would make the other's
            // bodies unreadable.
            return Err(StoreError::Corrupt(format!(
                "two different pack dictionaries have the id {id}"
            )));
        }
        return Ok(Dictionary {
            id,
            bytes: Arc::clone(&known.bytes),
        });
    }
    let bytes: Arc<[u8]> = Arc::from(bytes);
    registry.insert(
        id,
        Arc::new(Registered {
            bytes: Arc::clone(&bytes),
            decoder: zstd::dict::DecoderDictionary::copy(&bytes),
        }),
    );
    Ok(Dictionary { id, bytes })
}

/// The registered dictionary `id`, for unpacking.
pub(crate) fn registered(id: u32) -> Option<Arc<Registered>> {
    REGISTRY.read().ok()?.get(&id).cloned()
}

/// A dictionary is retrained after this many times `StoreOptions::pack_dictionary_after` events.
const RETRAIN_FACTOR: u64 = 100;

/// What a store packs new bodies with, and when it trains its next dictionary from its own
/// recent `created` events.
#[derive(Debug)]
pub(crate) struct Packing {
    /// The newest dictionary: new bodies are packed with it. `None` until one is trained.
    current: RwLock<Option<Dictionary>>,
    /// Events stored since `current` was trained (since the log began, without one).
    since: AtomicU64,
    /// Whether a training is under way.
    training: AtomicBool,
    /// After how many events without a dictionary one is trained; with one, a new one after
    /// `RETRAIN_FACTOR` times as many, so it follows what the decisions hold as that changes.
    after: u64,
}

impl Packing {
    /// `current` packs from now on; `since` events are already stored after it was trained.
    pub(crate) fn new(current: Option<Dictionary>, since: u64, after: u64) -> Self {
        Self {
            current: RwLock::new(current),
            since: AtomicU64::new(since),
            training: AtomicBool::new(false),
            after: after.max(1),
        }
    }

    pub(crate) fn current(&self) -> Option<Dictionary> {
        self.current.read().ok().and_then(|d| d.clone())
    }

    /// Packs with `dictionary` from now on, and counts anew.
    pub(crate) fn pack_with(&self, dictionary: Dictionary) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(dictionary);
        }
        self.since.store(0, Ordering::Relaxed);
    }

    /// Counts one more stored event; whether a training should start now (the caller then runs
    /// `train_in_background`).
    pub(crate) fn count_one(&self) -> bool {
        let since = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let due = if self.current().is_some() {
            self.after.saturating_mul(RETRAIN_FACTOR)
        } else {
            self.after
        };
        since >= due && !self.training.swap(true, Ordering::AcqRel)
    }

    /// Runs `training` (a backend's `train_pack_dictionary`) off the check path; whatever it
    /// ends in, counting starts again. A check never waits for it.
    pub(crate) fn train_in_background<F>(self: Arc<Self>, training: F)
    where
        F: Future<Output = Result<Option<u32>, StoreError>> + Send + 'static,
    {
        tokio::spawn(async move {
            match training.await {
                Ok(Some(id)) => tracing::info!(dictionary = id, "pack dictionary trained"),
                Ok(None) => tracing::debug!("too little to train a pack dictionary from yet"),
                // Bodies stay packed with the dictionary they had; counting starts again.
                Err(e) => tracing::warn!(error = %e, "a pack dictionary could not be trained"),
            }
            self.since.store(0, Ordering::Relaxed);
            self.training.store(false, Ordering::Release);
        });
    }
}

/// A dictionary trained from recent `created` events (`(row id, body, packed)`), registered:
/// it and its bytes for the backend to store before it packs with it; `None` when there was
/// too little to train from.
pub(crate) async fn train_from_events(
    rows: Vec<(i64, String, Option<Vec<u8>>)>,
) -> Result<Option<(Dictionary, Vec<u8>)>, StoreError> {
    let samples: Vec<String> = rows
        .into_iter()
        .filter_map(|(id, body, packed)| {
            packed::unpack(body, packed, || format!("event row {id}")).ok()
        })
        .collect();
    let trained = tokio::task::spawn_blocking(move || train(&samples))
        .await
        .map_err(|e| StoreError::Corrupt(format!("training a pack dictionary failed: {e}")))?;
    let Some(bytes) = trained else {
        return Ok(None);
    };
    let dictionary = register(&bytes)?;
    Ok(Some((dictionary, bytes)))
}

/// The dictionary ids that `frames` (packed bodies) name and this process has not registered.
pub(crate) fn unknown_ids<'a>(frames: impl Iterator<Item = &'a [u8]>) -> Vec<i64> {
    let mut unknown: Vec<i64> = Vec::new();
    for frame in frames {
        if let Some(id) = zstd::zstd_safe::get_dict_id_from_frame(frame).map(u32::from)
            && registered(id).is_none()
            && !unknown.contains(&i64::from(id))
        {
            unknown.push(i64::from(id));
        }
    }
    unknown
}

/// Forgets dictionary `id`, as a process that never loaded it (another replica's, in tests).
#[cfg(test)]
pub(crate) fn forget(id: u32) {
    if let Ok(mut registry) = REGISTRY.write() {
        registry.remove(&id);
    }
}

/// A dictionary trained from `samples`, the texts of recent bodies; `None` when zstd finds too
/// little in them to build one (too few samples, or nothing they share).
pub(crate) fn train(samples: &[String]) -> Option<Vec<u8>> {
    zstd::dict::from_samples(samples, MAX_SIZE).ok()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
pub(crate) mod tests {
    use super::*;

    /// Bodies alike in their keys and much of their text, as one gate's decisions are.
    pub(crate) fn samples(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let findings: Vec<_> = (0..40)
                    .map(|f| serde_json::json!({"id": format!("CVE-2026-{:05}", f * 7 + i % 5), "severity": "high", "package": "openssl", "title": "a flaw in the TLS handshake of this library", "fixed_in": "3.0.15"}))
                    .collect();
                serde_json::json!({"id": format!("dec_{i:08}"), "application": "payments-api", "rule_results": findings, "n": i}).to_string()
            })
            .collect()
    }

    #[test]
    fn a_trained_dictionary_registers_under_its_own_id_once() {
        let bytes = train(&samples(200)).expect("enough alike samples train a dictionary");
        assert!(bytes.len() <= MAX_SIZE);
        let a = register(&bytes).unwrap();
        let b = register(&bytes).unwrap();
        assert_eq!(a.id, b.id);
        assert!(registered(a.id).is_some());
        assert_eq!(
            Some(a.id),
            zstd::zstd_safe::get_dict_id_from_dict(&bytes).map(u32::from)
        );
    }

    #[test]
    fn what_is_not_a_dictionary_is_refused() {
        let err = register(b"not a dictionary").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn too_few_samples_train_nothing() {
        assert!(train(&samples(2)).is_none());
    }
}
