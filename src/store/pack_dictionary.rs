//! Dictionaries that packed bodies are compressed with (SQLite). One gate's decisions repeat the
//! same keys, rule texts and evidence, which zstd without a dictionary learns anew in every body.
//! A dictionary trained from the store's own recent `created` events holds that shared text
//! once, so each body packs to what is particular to it: in `benches/slo.rs` a decision's
//! `created` event went from ≈ 3.6 KB packed to ≈ 0.5 KB, and a decision's whole footprint from
//! ≈ 6.7 KB to ≈ 3.3 KB.
//!
//! A dictionary's id is zstd's, derived from its content, and every frame packed with it names
//! it, so a packed body says which dictionary it needs. Dictionaries are stored in
//! `pack_dictionaries` (migration 0016) and never deleted: they are small, and old rows need
//! them. This process keeps every dictionary it has loaded or trained in a registry by id,
//! which unpacking reads; a frame naming an id the registry lacks is `store.corrupt`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use super::StoreError;

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
