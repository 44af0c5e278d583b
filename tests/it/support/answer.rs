//! `Answer`: an HTTP response whose status is asserted before its body is read, so a test
//! cannot pass on an error body whose fields happen to be missing.

use reqwest::StatusCode;
use serde_json::Value;

/// A response read in full, with what was asked for the failure messages.
pub struct Answer {
    /// `POST /v1/checks` and the like.
    pub what: String,
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub async fn read(what: impl Into<String>, resp: reqwest::Response) -> Self {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Self {
            what: what.into(),
            status,
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
}
