//! The one place that keeps credentials out of what adapters report: URLs lose their user info
//! and secret-looking query parameters, and any text (error details, response excerpts, facts)
//! loses every credential value the call sent.
//!
//! Scrubbing by value, not only by header name, matters because tools echo requests back: an
//! error page quoting the `Authorization` header, or a debug endpoint listing the query string,
//! would otherwise carry the token into the audit trail.

use std::sync::Arc;

use http::HeaderMap;
use reqwest::Url;

use crate::secret::REDACTED;

/// Does a header or query parameter with this name carry a credential?
///
/// Names are split into words (`X-Api-Key` → `x api key`, `accessToken` → `access token`) so
/// that `projectKey` or `issueKey`, which are identifiers the audit trail needs, are kept while
/// `api_key`, `key` and `X-Amz-Signature` are hidden.
pub fn is_secret_name(name: &str) -> bool {
    const ALWAYS: &[&str] = &[
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "signature",
        "sig",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "session",
        "sessionid",
        "jwt",
        "apikey",
        "accesstoken",
        "bearer",
        "otp",
        "passphrase",
    ];
    // `key` alone is a credential only with one of these words, or when it is the whole name.
    const KEY_QUALIFIERS: &[&str] = &[
        "api",
        "access",
        "private",
        "secret",
        "client",
        "app",
        "signing",
        "subscription",
        "master",
        "auth",
        "license",
        "encryption",
        "sas",
    ];
    let words = words(name);
    if words.iter().any(|w| ALWAYS.contains(&w.as_str())) {
        return true;
    }
    let has_key = words.iter().any(|w| w == "key");
    has_key && (words.len() == 1 || words.iter().any(|w| KEY_QUALIFIERS.contains(&w.as_str())))
}

/// Lower-case words of an identifier: split on anything not alphanumeric and on camelCase humps.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The URL as it may be shown: no user info, and secret-looking query values replaced.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both setters fail only for URLs that cannot have user info (`data:`), which have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if shown.query().is_some() {
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // A fragment is never sent, but a copied URL may carry a token in it (OAuth implicit flow).
    shown.set_fragment(None);
    shown.to_string()
}

/// Removes known credential values from text. Built from what a call sends, so it also catches
/// credentials under header names nobody thought of.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every value to hide, non-empty, deduplicated.
    secrets: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Self::default().with(secrets)
    }

    /// This redactor plus more values.
    #[must_use]
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = self.secrets.iter().cloned().chain(more).collect();
        all.retain(|s| !s.is_empty());
        all.sort();
        all.dedup();
        Self {
            secrets: Arc::new(all),
        }
    }

    /// Adds the credential values of `headers`: those marked sensitive and those whose name
    /// looks secret. For `Scheme token` values the bare token is added too, because tools echo
    /// it without the scheme.
    #[must_use]
    pub fn with_headers(&self, headers: &HeaderMap) -> Self {
        let mut more = Vec::new();
        for (name, value) in headers {
            if !(value.is_sensitive() || is_secret_name(name.as_str())) {
                continue;
            }
            let Ok(text) = value.to_str() else { continue };
            more.push(text.to_string());
            if let Some((_, token)) = text.split_once(' ') {
                more.push(token.trim().to_string());
            }
        }
        self.with(more)
    }

    /// Adds the user info and secret-looking query values of `url`.
    #[must_use]
    pub fn with_url(&self, url: &Url) -> Self {
        let mut more = vec![url.username().to_string()];
        more.extend(url.password().map(str::to_string));
        more.extend(
            url.query_pairs()
                .filter(|(k, _)| is_secret_name(k))
                .map(|(_, v)| v.into_owned()),
        );
        // The percent-encoded forms appear in echoed URLs.
        more.extend(
            url.query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|p| p.split_once('='))
                .filter(|(k, _)| is_secret_name(k))
                .map(|(_, v)| v.to_string()),
        );
        self.with(more)
    }

    /// `text` with every known credential replaced by `[redacted]`.
    ///
    /// All occurrences of all values are found in the original text first and each run of
    /// covered characters is replaced once, so overlapping credentials are hidden whole (a
    /// replace-one-after-the-other would leave the tail of the second one visible).
    pub fn scrub(&self, text: &str) -> String {
        let mut covered = vec![false; text.len()];
        let mut any = false;
        for secret in self.secrets.iter() {
            let mut from = 0;
            while let Some(found) = text.get(from..).and_then(|rest| rest.find(secret.as_str())) {
                let at = from + found;
                covered[at..at + secret.len()].fill(true);
                any = true;
                // Step one character, not past the match: occurrences may overlap.
                from = at + text[at..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if !any {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut in_run = false;
        for (i, c) in text.char_indices() {
            // A match of valid UTF-8 starts and ends on character boundaries, so the first
            // byte of a character tells whether the whole character is covered.
            if covered[i] {
                if !in_run {
                    out.push_str(REDACTED);
                }
                in_run = true;
            } else {
                out.push(c);
                in_run = false;
            }
        }
        out
    }

    /// Scrubs every string (keys and values) of a JSON document in place.
    pub fn scrub_json(&self, value: &mut serde_json::Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => *s = self.scrub(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            serde_json::Value::Object(map) => {
                let taken = std::mem::take(map);
                for (k, mut v) in taken {
                    self.scrub_json(&mut v);
                    map.insert(self.scrub(&k), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use http::{HeaderValue, header};

    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "token",
            "access_token",
            "api_key",
            "apikey",
            "X-Api-Key",
            "key",
            "password",
            "client_secret",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "sig",
            "accessToken",
            "Authorization",
            "Cookie",
            "PRIVATE-TOKEN",
            "sessionid",
        ] {
            assert!(is_secret_name(n), "{n} should be secret");
        }
        for n in [
            "projectKey",
            "issueKey",
            "branch",
            "page",
            "monkey",
            "keyword",
            "component_key",
        ] {
            assert!(!is_secret_name(n), "{n} should not be secret");
        }
    }

    #[test]
    fn urls_lose_credentials_but_keep_identifiers() {
        let url = Url::parse(
            "https://bob:pw@tool.example/api?projectKey=acme&token=t0k&api_key=k3y#access_token=x",
        )
        .unwrap();
        let shown = redact_url(&url);
        assert_eq!(
            shown,
            "https://tool.example/api?projectKey=acme&token=%5Bredacted%5D&api_key=%5Bredacted%5D"
        );
        for s in ["bob", "pw", "t0k", "k3y", "access_token"] {
            assert!(!shown.contains(s), "{shown} contains {s}");
        }
    }

    #[test]
    fn scrubbing_removes_every_sent_credential() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc123"),
        );
        headers.insert("x-api-key", HeaderValue::from_static("k-456"));
        let mut odd = HeaderValue::from_static("zz-789");
        odd.set_sensitive(true);
        headers.insert("x-tool", odd);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let url = Url::parse("https://u:p4ss@h/x?token=q%2Fv").unwrap();
        let r = Redactor::default().with_headers(&headers).with_url(&url);

        let echoed = "auth=Bearer abc123 raw=abc123 key=k-456 odd=zz-789 q=q/v enc=q%2Fv p=p4ss";
        let out = r.scrub(echoed);
        for s in ["abc123", "k-456", "zz-789", "q/v", "q%2Fv", "p4ss"] {
            assert!(!out.contains(s), "{out} contains {s}");
        }
        assert!(out.contains("application/json") || !echoed.contains("application/json"));

        let mut doc =
            serde_json::json!({"h": {"Authorization": "Bearer abc123"}, "abc123": [1, "k-456"]});
        r.scrub_json(&mut doc);
        assert!(!doc.to_string().contains("abc123"));
        assert!(!doc.to_string().contains("k-456"));
    }

    #[test]
    fn overlapping_credentials_are_hidden_whole() {
        let r = Redactor::new(["abcdef123456".to_string(), "123456zzzzzz".to_string()]);
        assert_eq!(r.scrub("x abcdef123456zzzzzz y"), "x [redacted] y");
        assert_eq!(r.scrub("é123456zzzzzzé"), "é[redacted]é");
    }

    proptest::proptest! {
        #[test]
        fn scrubbed_text_never_contains_a_credential(
            secrets in proptest::collection::vec("[A-Za-z0-9_-]{12,40}", 1..4),
            pieces in proptest::collection::vec(("\\PC{0,20}", 0usize..4), 0..8),
        ) {
            let r = Redactor::new(secrets.clone());
            let text: String = pieces
                .iter()
                .map(|(noise, pick)| format!("{noise}{}", secrets.get(*pick).map_or("", String::as_str)))
                .collect();
            let out = r.scrub(&text);
            for s in &secrets {
                proptest::prop_assert!(!out.contains(s.as_str()), "{out:?} contains {s:?}");
            }
        }
    }
}
