//! Through which door a change to a decision came: an API call, a caller contract, an outside
//! review system, or the gate itself. Stored and served as the same short strings as before it
//! was an enum (`api`, `grpc`, `servicenow` …), so stored decisions and APIs did not change.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an approval, refusal or resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The JSON API (`POST /v1/decisions/{id}/review`).
    Api,
    /// The gRPC API.
    Grpc,
    /// A ServiceNow change request (polled, or read back on its callback).
    Servicenow,
    /// A Jira issue.
    Jira,
    /// The gate, because the review's deadline passed.
    Expiry,
    /// A Spinnaker Webhook stage (cancel).
    Spinnaker,
    /// Argo Rollouts analysis.
    Rollouts,
    /// The Kubernetes admission webhook.
    Admission,
}

impl Channel {
    pub const ALL: [Channel; 8] = [
        Channel::Api,
        Channel::Grpc,
        Channel::Servicenow,
        Channel::Jira,
        Channel::Expiry,
        Channel::Spinnaker,
        Channel::Rollouts,
        Channel::Admission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Grpc => "grpc",
            Channel::Servicenow => "servicenow",
            Channel::Jira => "jira",
            Channel::Expiry => "expiry",
            Channel::Spinnaker => "spinnaker",
            Channel::Rollouts => "rollouts",
            Channel::Admission => "admission",
        }
    }

    /// The channel named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn serialises_as_the_strings_stored_before_it_was_an_enum() {
        for c in Channel::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), c);
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("fax"), None);
    }
}
