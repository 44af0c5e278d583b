//! API-exact simulators of SonarQube, Jira, ServiceNow, Aqua, an OCI registry, GitHub and GitLab for tests, `portcullis sim` and
//! the demo: real axum servers on 127.0.0.1, one port per tool, with seeded data and a control API
//! for faults.
//!
//! They are written from `shared/contracts/adapters.md` with their own request/response models
//! and never use `crate::adapters`: a simulator that shared the adapters' types would share their
//! bugs, so the two must not agree by construction.
//!
//! Control API, on every simulator's port (never subject to faults):
//! - `POST /_sim/faults` with any of `{"delay_ms": 50, "fail_next": {"count": 2, "status": 503},
//!   "rate_limit_next": {"count": 1, "retry_after_s": 1}, "malformed_next": 1,
//!   "credentials_expired": true, "tokens_expired": true}` (every key: `faults::FaultSettings`);
//!   keys left out keep their value;
//! - `POST /_sim/scenario/{name}` switches a tool-specific scenario (see each tool's module);
//! - `POST /_sim/reset` clears faults and re-seeds the data;
//! - `GET /_sim/stats` gives `{"requests": N}`, the API requests received (faulted ones included).

pub mod aqua;
pub mod faults;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod registry;
pub mod servicenow;
pub mod sonarqube;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;

pub use faults::{Control, FaultSettings};

/// Why the simulators could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on `{addr}`: {detail}")]
    Bind { addr: String, detail: String },
}

/// One running simulator.
#[derive(Debug, Clone)]
pub struct SimHandle {
    /// `sonarqube`, `jira`, `servicenow`, `aqua`, `registry`, `github` or `gitlab`.
    pub tool: &'static str,
    /// `http://127.0.0.1:PORT`, the tool's base URL.
    pub base_url: String,
    pub addr: SocketAddr,
    /// Faults and counters, for in-process tests (the same as the HTTP control API).
    pub control: Arc<Control>,
}

/// The simulators. The servers run on the current tokio runtime until it shuts down.
#[derive(Debug, Clone)]
pub struct Sims {
    pub sonarqube: SimHandle,
    pub jira: SimHandle,
    pub servicenow: SimHandle,
    pub aqua: SimHandle,
    pub registry: SimHandle,
    pub github: SimHandle,
    pub gitlab: SimHandle,
}

impl Sims {
    pub fn all(&self) -> [&SimHandle; 7] {
        [
            &self.sonarqube,
            &self.jira,
            &self.servicenow,
            &self.aqua,
            &self.registry,
            &self.github,
            &self.gitlab,
        ]
    }
}

/// Starts them all, each on `127.0.0.1:port` (`first_port + i`, or any free port when
/// `first_port` is 0). Listeners are bound before this returns, so callers never wait.
pub async fn start(first_port: u16) -> Result<Sims, SimError> {
    let port = |i: u16| {
        if first_port == 0 {
            0
        } else {
            first_port.saturating_add(i)
        }
    };
    Ok(Sims {
        sonarqube: serve("sonarqube", port(0), sonarqube::router).await?,
        jira: serve("jira", port(1), jira::router).await?,
        servicenow: serve("servicenow", port(2), servicenow::router).await?,
        aqua: serve("aqua", port(3), aqua::router).await?,
        registry: serve("registry", port(4), registry::router).await?,
        github: serve("github", port(5), github::router).await?,
        gitlab: serve("gitlab", port(6), gitlab::router).await?,
    })
}

/// Starts one simulator on `127.0.0.1:port`.
pub async fn serve(
    tool: &'static str,
    port: u16,
    router: fn(Arc<Control>) -> Router,
) -> Result<SimHandle, SimError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SimError::Bind {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind {
        addr: addr.to_string(),
        detail: e.to_string(),
    })?;
    let control = Arc::new(Control::new(tool));
    let app = router(Arc::clone(&control));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(tool, "simulator stopped: {e}");
        }
    });
    Ok(SimHandle {
        tool,
        base_url: format!("http://{addr}"),
        addr,
        control,
    })
}

/// The bearer token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// User and password of an `Authorization: Basic …` header.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 (RFC 4648 §4) with padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        let mut pad = 0;
        for &b in chunk {
            let v = if b == b'=' {
                pad += 1;
                0
            } else if pad > 0 {
                return None;
            } else {
                u32::try_from(ALPHABET.iter().position(|&a| a == b)?).ok()?
            };
            acc = (acc << 6) | v;
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if pad < 2 {
            out.push(b);
        }
        if pad < 1 {
            out.push(c);
        }
        if pad > 2 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_text() {
        assert_eq!(base64_decode("dXNlcjpwdw==").unwrap(), b"user:pw");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("YW=I").is_none());
        assert!(base64_decode("abc").is_none());
    }
}
