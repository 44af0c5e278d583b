//! Keyset pagination shared by every backend: page sizes and the opaque page token.
//!
//! Pages are ordered by decision id, newest first. Ids are UUIDv7, whose canonical text sorts by
//! creation time and never ties, so "ids below the last one seen" is a stable cursor: rows
//! inserted while a caller pages through appear on no page twice and shift nothing (unlike an
//! offset).

use crate::domain::DecisionId;

use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, StoreError};

/// Version prefix inside the token, so a later change of ordering key can refuse old tokens
/// instead of misreading them.
const TOKEN_VERSION: &str = "1:";

/// Longest token worth decoding; real ones are about 80 characters.
const MAX_TOKEN_LEN: usize = 256;

/// `0` means "not set" and gets the default; anything else is clamped to `1..=MAX_PAGE_SIZE`.
pub(crate) fn clamp_page_size(page_size: u32) -> u32 {
    if page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        page_size.min(MAX_PAGE_SIZE)
    }
}

/// The token handed out after a page whose last decision is `last`. Hex rather than the raw id
/// so callers treat it as opaque and do not start building their own.
pub(crate) fn encode_token(last: &DecisionId) -> String {
    hex::encode(format!("{TOKEN_VERSION}{last}"))
}

/// The id to continue below. Anything not produced by `encode_token` is `InvalidPageToken`.
pub(crate) fn decode_token(token: &str) -> Result<DecisionId, StoreError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(StoreError::InvalidPageToken);
    }
    let bytes = hex::decode(token).map_err(|_| StoreError::InvalidPageToken)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidPageToken)?;
    let id = text
        .strip_prefix(TOKEN_VERSION)
        .ok_or(StoreError::InvalidPageToken)?;
    DecisionId::parse(id).map_err(|_| StoreError::InvalidPageToken)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let id = DecisionId::generate();
        assert_eq!(decode_token(&encode_token(&id)).unwrap(), id);
    }

    #[test]
    fn garbled_tokens_are_refused() {
        for bad in [
            "",
            "zz",
            "abc",
            &hex::encode("1:not-a-uuid"),
            &hex::encode("2:x"),
            &"a".repeat(1000),
        ] {
            assert!(
                matches!(decode_token(bad), Err(StoreError::InvalidPageToken)),
                "{bad}"
            );
        }
        let id = DecisionId::generate();
        assert!(decode_token(&hex::encode(format!("9:{id}"))).is_err());
    }

    #[test]
    fn page_sizes_are_clamped() {
        assert_eq!(clamp_page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(clamp_page_size(1), 1);
        assert_eq!(clamp_page_size(500), 500);
        assert_eq!(clamp_page_size(u32::MAX), MAX_PAGE_SIZE);
    }
}
