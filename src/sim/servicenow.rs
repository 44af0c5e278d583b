//! ServiceNow simulator (contract §3): the Table API on `change_request` and
//! `sysapproval_approver` (`sysparm_query` with `^`, `IN`, `ORDERBY[DESC]`, dot-walked
//! `cmdb_ci.name`, unknown conditions silently dropped; `sysparm_display_value`
//! false/true/all; `sysparm_exclude_reference_link`; `sysparm_fields`; limit/offset with `Link`
//! and `X-Total-Count`; `{"result":[]}` on no match; 404 envelope on an unknown sys_id), the
//! Change Management API (`{value, display_value}` fields, `__meta` on writes, new normal changes
//! in `-5` / `not requested`), `POST /oauth_token.do`, Basic and Bearer auth with the 401
//! envelope, 429 with `Retry-After` and `X-RateLimit-*`. Raw dates are UTC; display dates are in
//! the integration user's zone (America/New_York, shown as UTC−5). Without an `Accept` that
//! allows JSON the answer is XML, as a real instance may do.
//!
//! Seeded changes (window relative to start-up): `CHG0030001` approved, Scheduled, in its window,
//! CI `payments-api`; `CHG0030002` requested, Authorize; `CHG0030003` rejected, back to New;
//! `CHG0030004` approved with no end date (`""`); `CHG0030005` approved, window in the past;
//! `CHG0030006` approved but Canceled; `CHG0030007` standard, Implement, CI `orders-api`.
//! A normal change created with `POST /api/sn_chg_rest/change/normal` starts in New / not
//! requested and moves one step per read of it by sys_id: Assess, Authorize (requested),
//! Scheduled (approved). `POST /_sim/changes/{number}` decides a change as its CAB would (see
//! `decide`), recording who in `sysapproval_approver.sys_updated_by`.
//!
//! Here the state and the routes; `servicenow/seed.rs` the seeded data and how a created change
//! moves on, `servicenow/query.rs` the query engine and record shapes, `servicenow/api.rs` the
//! handlers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};

use super::faults::{Control, wrap};

mod api;
mod query;
mod seed;

pub use self::seed::PROGRESSION_APPROVER;

use self::api::{
    change_create, change_get, change_list, decide, oauth_token, render_error, reset, table_get,
    table_list, unauthenticated,
};
use self::seed::seed;

/// Basic auth of the integration user.
pub const USER: &str = "portcullis.integration";
pub const PASSWORD: &str = "snow-Sim-pa55word";
/// OAuth client for `POST /oauth_token.do` (`client_credentials` or `password` grant).
pub const CLIENT_ID: &str = "3f1b2c0d9e8a7b6c5d4e3f2a1b0c9d8e";
pub const CLIENT_SECRET: &str = "snow-Sim-client-secret";

const INSTANCE: &str = "https://acme.service-now.com";
const RAW_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One record: field name → raw string value. Reference fields hold the referenced sys_id.
type Record = BTreeMap<&'static str, String>;

#[derive(Debug)]
struct Data {
    changes: Vec<Record>,
    approvals: Vec<Record>,
    /// sys_id → name of configuration items.
    cis: BTreeMap<String, String>,
    tokens: Vec<(String, u64)>,
    created: u32,
    /// sys_ids of changes created through the API: each read moves them one step through
    /// New → Assess → Authorize (approval requested) → Scheduled (approved), as a CAB would.
    progressing: Vec<String>,
}

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

const REFERENCE_FIELDS: [&str; 2] = ["cmdb_ci", "sysapproval"];

fn sys_id(n: u32) -> String {
    format!("{n:032x}")
}

fn raw(t: DateTime<Utc>) -> String {
    t.format(RAW_FORMAT).to_string()
}

/// The simulator's routes.
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/api/now/table/{table}", get(table_list))
        .route("/api/now/table/{table}/{sys_id}", get(table_get))
        .route("/api/sn_chg_rest/change", get(change_list))
        .route("/api/sn_chg_rest/v1/change", get(change_list))
        .route("/api/sn_chg_rest/change/normal", post(change_create))
        .route("/api/sn_chg_rest/v1/change/normal", post(change_create))
        .route("/api/sn_chg_rest/change/{sys_id}", get(change_get))
        .route("/api/sn_chg_rest/v1/change/{sys_id}", get(change_get))
        .route("/oauth_token.do", post(oauth_token))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/changes/{number}", post(decide))
            .with_state(sim),
    )
}

impl Sim {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The response refusing the request's credentials, if they are refused.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.control.credentials_expired() {
            return Some(unauthenticated());
        }
        let epoch = self.control.token_epoch();
        let ok = match (super::basic(headers), super::bearer(headers)) {
            (Some((user, password)), _) => user == USER && password == PASSWORD,
            (None, Some(token)) => self
                .data()
                .tokens
                .iter()
                .any(|(t, e)| *t == token && *e == epoch),
            _ => false,
        };
        if ok { None } else { Some(unauthenticated()) }
    }
}
