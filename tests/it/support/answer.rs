//! `Answer`: an HTTP response whose status is asserted before its body is read, so a test
//! cannot pass on an error body whose fields happen to be missing.

use reqwest::StatusCode;
use serde_json::Value;

/// A response read in full, with what was asked for the failure messages.
pub struct Answer {
    /// `POST /v1/checks` and the like.
    pub what: String,
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn read(what: impl Into<String>, resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Self {
            what: what.into(),
            status,
            headers,
            body,
        }
    }

    /// Asserts the status, then parses the body as JSON.
    #[track_caller]
    pub fn json_with(self, want: StatusCode) -> Value {
        let this = self.expect(want);
        serde_json::from_str(&this.body).unwrap_or_else(|e| {
            panic!(
                "{}: {} body is not JSON ({e}): {}",
                this.what, this.status, this.body
            )
        })
    }

    /// Asserts the status and hands the answer on.
    #[track_caller]
    pub fn expect(self, want: StatusCode) -> Self {
        assert_eq!(
            self.status, want,
            "{}: expected {want}, got {} with body {}",
            self.what, self.status, self.body
        );
        self
    }

    /// The status as a number and the body as JSON (`Null` when it is not JSON), for helpers
    /// whose callers assert the status next to the body, as in `(403, reason)`.
    pub fn parts(self) -> (u16, Value) {
        (
            self.status.as_u16(),
            serde_json::from_str(&self.body).unwrap_or(Value::Null),
        )
    }

    /// A header's value as text.
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("{}: {} has no `{name}` header", self.what, self.status))
            .to_str()
            .unwrap()
    }
}
