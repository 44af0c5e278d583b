//! Portcullis, a deployment firewall: before a deploy proceeds, pipelines ask the gate; it
//! gathers evidence concurrently, evaluates policy-as-code rules over it, and answers continue,
//! manual review or terminate, with a durable record of why.
//!
//! Crate map (ARCHITECTURE.md has the full codemap and the dependency rules):
//! - `domain`: requests, decisions, evidence; parsed once at the edge.
//! - `policy`: rules as YAML, validated with spans, evaluated over evidence; no I/O.
//! - `adapters`: evidence sources behind one trait, and the shared HTTP client.
//! - `audit`: the hash chain, Merkle tree and signed checkpoints a verifier checks.
//! - `store`: durable decisions (SQLite embedded for one replica; PostgreSQL for several).
//! - `gate`: the core service every transport calls.
//! - `report`: the audit export as CSV and as a self-contained HTML report.
//! - `review_routing`: reviews decided by a ServiceNow change or a Jira issue, through one generic
//!   follower (opened, polled with backoff, called back).
//! - `notify`: signed outbound webhooks when reviews open, end or near their deadline.
//! - `api`: gRPC and HTTP/JSON transports; `pb`: generated protobuf types.
//! - `edge`: the HTTP plumbing under `api` and `contracts` (state, caller, problem+json, JSON
//!   body decoding, base URL); `contracts`: external callers' exact shapes.
//! - `clock`: where time is read and waited for (the system's, or a test's manual clock).
//! - `auth`, `config`, `metrics`, `telemetry`, `serve`: wiring and cross-cutting concerns.
//! - `client`, `cli`: the command line, including the pipeline client `portcullis check`.

pub mod adapters;
pub mod admission;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod contracts;
pub mod domain;
pub mod edge;
pub mod gate;
pub mod metrics;
pub mod notify;
pub mod pb;
pub mod policy;
pub mod report;
pub mod review_routing;
pub mod secret;
pub mod serve;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tls;
