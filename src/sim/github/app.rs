//! The GitHub simulator's App authentication: the App's key, RS256 JWT verification (`iss` the
//! App id, `exp` at most ten minutes after `iat`), the installation of a repository, and
//! installation access tokens that expire an hour after the JWT's `iat` + 60 s.
#![expect(
    clippy::result_large_err,
    reason = "handlers return the vendor's error response as the error; one per request"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::signature::Verifier as _;
use serde_json::{Value, json};

use super::{APP_ID, INSTALLATION_ID, Sim, message, not_found};

/// The simulated GitHub App's private key (public test material, PKCS#1 as GitHub issues it).
pub const APP_PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAtT+SU4xUJ6snkjjCrRjKeIYd4Nm5WOiQ8LzjLmrk9jr6rt7A
PsTQNfsaYOpcg+cWHAIqQzA2r7QDpfEeAmmivnooT83OQ3QFv0m8vepl6GpIcagh
lSj6N4fi9wJI6HJTRNwXxNCYiEn5Fn1xn+1g8oPu2qLWQwmiKrks+/lKXtLsLlSX
FEJXpm/43KH3iejffLzWmk51PjQwOJU0ZtmhntrSA4S+529eH/jqHH4xme1cGHY9
/HYWcbVymfROG1Q7GM57i6Kd0tfKHBtUTkzfgx9oQoNvqan/TjFzzh5ylEXMFyG7
qXlfnNlW+iteWvJUudFYygmuIlOmNZdcGetd0wIDAQABAoIBAEf63jbV9Rnn7Agz
CIVL4iTpRnZkoSpA+kbRDPwDMbjkBWhrSDflW7cEaR5yFJnBrVMkPPp/7EftGsHN
NxjIMPyqcNX4quC49Ata0l0t+JjLlMemeOfO5UgmbCmiu6est4sSSVI9cUY28nhP
C0/zKtxFLxefMa5f5gpHjijngPSU7HOp+xjTB2ojtMphc2P+pADW+1tgw187iIhV
3iFAyOiCN45CAzTwonrAkz7wxvLXHFcQI1EQNWSFuyLSTXIWtiKdjQ/lezlbDjJ3
aeow8azo5VoAV2sD1/rhqCqi0DgtR9RZW5Xx3v8NaYn4wtPyki5CF5PXDB7jFsIM
Fx0/dpkCgYEA+muVe6+0AgfhRiFr1QhI1zOmWb2kNFw0TlRpod4X6yWvYer6qf4m
DIQDkdCyjC4SGUIkmnaRpszYdmfnRABUCjp7T+zJQi6Vgxd/8NBCF+LDHtIfSvTb
C2nSxNzWQAVBguBVz5SK0KIxYsw70IvwcVgDiAjyRVpz0vYl/kDgwA8CgYEAuUls
/7npOdxV9I/4ZZfJAkfl2NqeNPYxk2vkdDf5ltQF5LnLRQyAKOyIqumzkaKaTYHp
ePD2EUVTVaNbTSm+Ry7YUBZ36YHKf+72P9I/vOCN1ne93NnqtbO+mlzjLIoGZpFx
V/qiyvgiUSKXiz6LAoEwEXm0tL6OwENb6a6agf0CgYAntF0cIkyhMcynCO+G9GxQ
KrFKc0YQwznL3ZhuAL+8GdqH5PDfeRthSqEiQnu8vCVEefdBwmDvmHUNuQWzA3ZP
tNwOXRW/95DfGx++99Yy4VJclaY+hTohwiKX8gfKWMr9TEJuyjeEQuMfrhAhzb5O
ykytCfYXxvKsVTjK6lB4QwKBgEfoQQ71vZeg9RLWlNYIlA/4izEfluqC6TaHVr/r
wUdRvX/IwyRm943qThfWXsQUUMHnuw4epcCKIQ9JOHO30YqamYRrU9ohbs87lAGs
vOO2WhVznxGI2Nfvi/coOVndryI7K7uzH16Z8ed+/0Ug3p34OQlvLDxA//GJsq/7
/SaZAoGBALWF2DTJZiRb0fMmvX/xOL+/TKl/fZrUBlMS0kZcBALWHR4Intl4OaAR
EnZNKWvh61nhsGCryhcRKBYvQWMmtbCcf3O6sAh1Vg6xGIIfDdkfJEVHch8sDQRL
hF4g/JkPOY0mCXulCnp2p2sNLDv4yctY8y5is8h7BrfFw8Hs7vhY
-----END RSA PRIVATE KEY-----\n";

/// The claims of an App JWT signed with the App's key, or GitHub's 401.
fn app_claims(headers: &HeaderMap) -> Result<Value, Response> {
    let refuse = |m: &str| message(StatusCode::UNAUTHORIZED, m);
    let jwt = crate::sim::bearer(headers)
        .ok_or_else(|| refuse("A JSON web token could not be decoded"))?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, body, sig] = parts.as_slice() else {
        return Err(refuse("A JSON web token could not be decoded"));
    };
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(APP_PRIVATE_KEY)
        .map_err(|_| refuse("Integration not found"))?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|s| rsa::pkcs1v15::Signature::try_from(s.as_slice()).ok())
        .ok_or_else(|| refuse("A JSON web token could not be decoded"))?;
    verifier
        .verify(format!("{head}.{body}").as_bytes(), &signature)
        .map_err(|_| refuse("A JSON web token could not be decoded"))?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refuse("A JSON web token could not be decoded"))?;
    if claims["iss"].as_str() != Some(APP_ID.to_string().as_str()) && claims["iss"] != APP_ID {
        return Err(refuse("Integration not found"));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(refuse("A JSON web token could not be decoded"));
    };
    if exp <= iat || exp - iat > 660 {
        return Err(refuse(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(claims)
}

pub(super) async fn installation(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = app_claims(&headers) {
        return r;
    }
    if !sim.repos().contains_key(&format!("{owner}/{repo}")) {
        return not_found();
    }
    Json(
        json!({"id": INSTALLATION_ID, "app_id": APP_ID, "target_type": "Organization",
        "account": {"login": owner}, "repository_selection": "all",
        "permissions": {"administration": "read", "metadata": "read", "contents": "read",
            "pull_requests": "read", "checks": "read", "statuses": "read", "actions": "read"}}),
    )
    .into_response()
}

pub(super) async fn access_token(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let claims = match app_claims(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if id != INSTALLATION_ID {
        return not_found();
    }
    let n = sim.issued.fetch_add(1, Ordering::SeqCst);
    let token = format!("ghs_sim{n:0>32}");
    sim.tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(token.clone(), sim.control.token_epoch());
    // One hour from when the JWT says it was made (its `iat` is 60 s back for drift).
    let issued = claims["iat"].as_i64().unwrap_or(0) + 60;
    let expires = chrono::DateTime::from_timestamp(issued + 3600, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    (
        StatusCode::CREATED,
        Json(json!({"token": token, "expires_at": expires,
            "permissions": {"administration": "read", "metadata": "read", "contents": "read"},
            "repository_selection": "all"})),
    )
        .into_response()
}
