//! The HTTP edge every route stands on, below both `api` (the gate's own routes) and `contracts`
//! (external callers' shapes): the state handlers share (`HttpState`), who is calling
//! (`Authed`), errors as problem+json with the one mapping of every error type onto HTTP
//! (`Problem`), the one JSON body decoder that names where a body is wrong (`decode_json`), and
//! the absolute base URL of the links a route answers with (`base_url`). Routers are assembled
//! in `serve`, which merges `api::http::routes()` and `contracts::routes(..)`.

mod auth;
mod body;
mod links;
pub mod problem;
mod state;

pub use auth::Authed;
pub use body::decode_json;
pub use links::base_url;
pub use problem::{Problem, not_found};
pub use state::HttpState;
