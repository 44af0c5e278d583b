//! Large bodies stored compressed (SQLite): a decision and its `created` event each carry the
//! check's request, evidence and rule results, ≈ 10 KB of JSON that zstd at its fastest level
//! packs to about a quarter. Fewer pages written is most of what a SQLite insert costs, so this
//! makes checks cheaper as well as the file smaller.
//!
//! A packed row has an empty `body` and its text, compressed, in `packed` (migration 0014);
//! small bodies stay plain text, so SQL that reads a small event's JSON (the ticket index's
//! trigger) still can. The event's hash is over its text, never over the packed bytes: packing
//! is storage, and the offline verifier never sees it. PostgreSQL compresses in its own storage
//! (lz4, migration 0012), so its rows are never packed.

use std::io::Read as _;

use super::StoreError;
use super::pack_dictionary::{self, Dictionary};

/// Bodies at least this long are packed; shorter ones gain too little to pay for the work.
pub(crate) const PACK_FROM: usize = 1024;

/// zstd's fastest level: most of the saving for a small fraction of the CPU of its default.
const LEVEL: i32 = 1;

/// The most a packed body may unpack to: far above any decision a gate answers with, and low
/// enough that an edited row cannot make a read allocate without bound.
const MAX_UNPACKED: usize = 64 * 1024 * 1024;

/// A body as stored: the text, or an empty text and the text packed.
#[derive(Debug)]
pub(crate) struct Packed<'a> {
    pub(crate) body: &'a str,
    pub(crate) packed: Option<Vec<u8>>,
}

/// `text` as it is stored: packed when long enough and packing shrinks it, with `dictionary`
/// when there is one (`store/pack_dictionary.rs`).
pub(crate) fn pack<'a>(text: &'a str, dictionary: Option<&Dictionary>) -> Packed<'a> {
    if text.len() < PACK_FROM {
        return Packed {
            body: text,
            packed: None,
        };
    }
    match compress(text.as_bytes(), dictionary) {
        Ok(bytes) if bytes.len() < text.len() => Packed {
            body: "",
            packed: Some(bytes),
        },
        // Incompressible, or the compressor could not run: plain text is always right.
        _ => Packed {
            body: text,
            packed: None,
        },
    }
}

/// `bytes` compressed by this thread's compressor: a zstd context is hundreds of KB of tables,
/// and creating one per body cost a check more than compressing it. The context keeps the
/// dictionary it was last given (digested once), so it is reloaded only when that changes.
fn compress(bytes: &[u8], dictionary: Option<&Dictionary>) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(Option<u32>, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        let (loaded, compressor) = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert((None, zstd::bulk::Compressor::new(LEVEL)?)),
        };
        let wanted = dictionary.map(|d| d.id);
        if *loaded != wanted {
            // An empty dictionary clears the one loaded.
            *loaded = None;
            compressor.set_dictionary(LEVEL, dictionary.map_or(&[][..], |d| &d.bytes))?;
            *loaded = wanted;
        }
        compressor.compress(bytes)
    })
}

/// An event's text as it is stored: only `created` events are packed. They carry the check;
/// every other kind is small, and the ticket index's trigger reads `review_ticket_attached`
/// bodies as JSON (migration 0011).
pub(crate) fn pack_event<'a>(
    kind: &str,
    text: &'a str,
    dictionary: Option<&Dictionary>,
) -> Packed<'a> {
    if kind == "created" {
        pack(text, dictionary)
    } else {
        Packed {
            body: text,
            packed: None,
        }
    }
}

/// The text of a stored body; `what` names the row for the error.
pub(crate) fn unpack(
    body: String,
    packed: Option<Vec<u8>>,
    what: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    unpack_within(body, packed, what, MAX_UNPACKED)
}

fn unpack_within(
    body: String,
    packed: Option<Vec<u8>>,
    what: impl FnOnce() -> String,
    limit: usize,
) -> Result<String, StoreError> {
    let Some(bytes) = packed else {
        return Ok(body);
    };
    if !body.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "{} has both a text and a packed body",
            what()
        )));
    }
    let mut text = Vec::new();
    let cap = limit as u64 + 1;
    // A frame packed with a dictionary names it (`store/pack_dictionary.rs`).
    let read = match zstd::zstd_safe::get_dict_id_from_frame(&bytes).map(u32::from) {
        None => zstd::stream::read::Decoder::new(bytes.as_slice())
            .and_then(|decoder| decoder.take(cap).read_to_end(&mut text)),
        Some(id) => {
            let Some(dictionary) = pack_dictionary::registered(id) else {
                return Err(StoreError::Corrupt(format!(
                    "{}'s packed body needs pack dictionary {id}, which this database does not hold",
                    what()
                )));
            };
            zstd::stream::read::Decoder::with_prepared_dictionary(
                bytes.as_slice(),
                &dictionary.decoder,
            )
            .and_then(|decoder| decoder.take(cap).read_to_end(&mut text))
        }
    };
    match read {
        Ok(n) if n <= limit => String::from_utf8(text)
            .map_err(|_| StoreError::Corrupt(format!("{}'s packed body is not UTF-8", what()))),
        Ok(_) => Err(StoreError::Corrupt(format!(
            "{}'s packed body unpacks to more than {limit} bytes",
            what()
        ))),
        Err(e) => Err(StoreError::Corrupt(format!(
            "{}'s packed body cannot be unpacked: {e}",
            what()
        ))),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn what() -> String {
        "decision `d`".into()
    }

    #[test]
    fn long_bodies_are_packed_and_come_back_whole() {
        let text = serde_json::json!({"evidence": vec!["the same finding again"; 200]}).to_string();
        let p = pack(&text, None);
        assert_eq!(p.body, "");
        let bytes = p.packed.unwrap();
        assert!(
            bytes.len() * 4 < text.len(),
            "{} of {}",
            bytes.len(),
            text.len()
        );
        assert_eq!(unpack(String::new(), Some(bytes), what).unwrap(), text);
    }

    #[test]
    fn only_created_events_are_packed() {
        let text = format!(r#"{{"ticket":"{}"}}"#, "x".repeat(4000));
        assert!(pack_event("created", &text, None).packed.is_some());
        let attached = pack_event("review_ticket_attached", &text, None);
        assert_eq!((attached.body, attached.packed), (text.as_str(), None));
    }

    #[test]
    fn short_bodies_stay_text() {
        let p = pack(r#"{"kind":"approval_recorded"}"#, None);
        assert_eq!(p.body, r#"{"kind":"approval_recorded"}"#);
        assert!(p.packed.is_none());
        assert_eq!(unpack(p.body.into(), None, what).unwrap(), p.body);
    }

    #[test]
    fn a_dictionary_packs_alike_bodies_smaller_and_they_come_back_whole() {
        let samples = pack_dictionary::tests::samples(300);
        let dictionary =
            pack_dictionary::register(&pack_dictionary::train(&samples[..250]).unwrap()).unwrap();
        let text = &samples[299];
        let plain = pack(text, None).packed.unwrap();
        let with = pack(text, Some(&dictionary)).packed.unwrap();
        assert!(
            with.len() * 3 < plain.len() * 2,
            "{} vs {}",
            with.len(),
            plain.len()
        );
        assert_eq!(unpack(String::new(), Some(with), what).unwrap(), *text);
        // The thread's compressor lets go of the dictionary when asked for none.
        let again = pack(text, None).packed.unwrap();
        assert_eq!(again, plain);
        assert_eq!(unpack(String::new(), Some(again), what).unwrap(), *text);
    }

    #[test]
    fn a_body_naming_an_unknown_dictionary_is_corrupt() {
        let samples = pack_dictionary::tests::samples(300);
        let bytes = pack_dictionary::train(&samples[1..]).unwrap();
        let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes).unwrap();
        // Packed with a dictionary this process never registered.
        let packed = zstd::bulk::Compressor::with_dictionary(1, &bytes)
            .unwrap()
            .compress(samples[0].as_bytes())
            .unwrap();
        assert!(pack_dictionary::registered(id.into()).is_none());
        let e = unpack(String::new(), Some(packed), what).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
    }

    #[test]
    fn damaged_rows_are_corrupt_not_a_panic() {
        let e = unpack(String::new(), Some(b"not zstd".to_vec()), what).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        let both = unpack("{}".into(), Some(vec![1]), what).unwrap_err();
        assert!(both.to_string().contains("both"), "{both}");
    }

    #[test]
    fn a_body_that_unpacks_past_the_limit_is_refused() {
        let long = vec![b' '; 5_000];
        let bytes = zstd::bulk::compress(&long, 1).unwrap();
        let e = unpack_within(String::new(), Some(bytes.clone()), what, 4_999).unwrap_err();
        assert!(e.to_string().contains("more than 4999"), "{e}");
        assert_eq!(
            unpack_within(String::new(), Some(bytes), what, 5_000)
                .unwrap()
                .len(),
            5_000
        );
    }
}
