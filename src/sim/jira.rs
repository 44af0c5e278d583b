//! Jira simulator (contract §2): Cloud v3 and Data Center v2 issue reads with the same status
//! shape, the token-paginated `GET /rest/api/3/search/jql` (`isLast`, no `total`, `fields`
//! defaulting to `id`), the legacy `/rest/api/{2,3}/search` answering 410 (Cloud) or paging by
//! `startAt` (scenario `data_center`), `POST /rest/api/{3,2}/issue` (ADF on v3), `myself`, Basic
//! `email:api_token` and Bearer PAT auth, `text/plain` 401, 404 `ErrorCollection`, Cloud 429
//! headers.
//!
//! Seeded issues: `OPS-42` Done (done category, resolution Done), `OPS-43` In Progress,
//! `OPS-44` "Approved" in the In Progress category, `OPS-45` Done with no resolution, `OLD-7`
//! moved (answers as `OPS-46`, Done), `REL-1` … `REL-7` (To Do, for paging).
//!
//! Scenarios: `cloud` (default), `data_center` (legacy search works). `POST
//! /_sim/issues/{key}/status` moves an issue to another status (see `set_status`), recording
//! who moved it in the issue's changelog, served as Jira does: `expand=changelog` on an issue
//! read (`changelog.histories`, Cloud and Data Center) and the paged
//! `GET /rest/api/{3,2}/issue/{key}/changelog` (`values`, `isLast`, `total`).
//!
//! Here the state and the routes; `jira/seed.rs` the seeded issues, `jira/query.rs` the JQL
//! subset and the views, `jira/api.rs` the handlers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::faults::{Control, wrap};

mod api;
mod query;
mod seed;

use self::api::{
    create_issue, get_changelog, get_issue, legacy_search, myself, render_error, reset, scenario,
    search_jql, set_status, unauthenticated,
};
use self::seed::seed;

/// Cloud Basic auth: this email with `API_TOKEN`.
pub const EMAIL: &str = "ci-bot@acme.example";
pub const API_TOKEN: &str = "ATATT3xSimJiraToken0042";
/// Data Center personal access token (Bearer).
pub const PAT: &str = "NjQ0SimJiraPersonalAccessToken";

#[derive(Debug, Clone, Copy)]
struct Category {
    id: u32,
    key: &'static str,
    name: &'static str,
    color: &'static str,
}

const TODO: Category = Category {
    id: 2,
    key: "new",
    name: "To Do",
    color: "blue-gray",
};
const IN_PROGRESS: Category = Category {
    id: 4,
    key: "indeterminate",
    name: "In Progress",
    color: "yellow",
};
const DONE: Category = Category {
    id: 3,
    key: "done",
    name: "Done",
    color: "green",
};

/// One status move in an issue's changelog: (who, from (name, id), to (name, id)).
type StatusMove = (
    String,
    (&'static str, &'static str),
    (&'static str, &'static str),
);

#[derive(Debug, Clone)]
struct Issue {
    id: u32,
    key: String,
    summary: String,
    status: (&'static str, &'static str, Category),
    resolution: Option<&'static str>,
    labels: Vec<String>,
    /// Status moves, oldest first.
    history: Vec<StatusMove>,
}

#[derive(Debug)]
struct Data {
    data_center: bool,
    issues: Vec<Issue>,
    /// Old key → current key.
    moved: BTreeMap<String, String>,
    next_id: u32,
}

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

/// The simulator's routes.
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/rest/api/{version}/issue/{key}", get(get_issue))
        .route(
            "/rest/api/{version}/issue/{key}/changelog",
            get(get_changelog),
        )
        .route("/rest/api/{version}/issue", post(create_issue))
        .route("/rest/api/3/search/jql", get(search_jql))
        .route("/rest/api/{version}/search", get(legacy_search))
        .route("/rest/api/{version}/myself", get(myself))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/scenario/{name}", post(scenario))
            .route("/_sim/issues/{key}/status", post(set_status))
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
        let ok = match (super::basic(headers), super::bearer(headers)) {
            (Some((user, token)), _) => user == EMAIL && token == API_TOKEN,
            (None, Some(token)) => token == PAT,
            _ => false,
        };
        if ok { None } else { Some(unauthenticated()) }
    }
}
