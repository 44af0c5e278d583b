//! The one integration-test binary: it starts the real service on 127.0.0.1:0 and talks to it as
//! clients do (HTTP, gRPC, the CLI binary).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(
    unreachable_pub,
    reason = "test helpers are shared between test modules"
)]

mod adapters;
mod adapters_traps;
mod admission;
mod architecture;
mod audit_ledger;
mod audit_report;
mod auth;
mod bad_input;
mod cli;
mod contracts_rollouts;
mod contracts_spinnaker;
mod edge;
mod environments;
mod evidence;
mod fail_closed;
mod fault_matrix;
mod findings;
mod grpc;
mod grpc_limits;
mod http;
mod integrations;
mod notify;
mod openapi;
mod peer_policy;
mod persistence;
mod policy_reload;
mod policy_versions;
mod replicas;
mod review;
mod review_refusals;
mod review_routing;
mod review_routing_jira;
mod rollouts_analysis_model;
mod scopes;
mod servicenow_change_check;
mod sim;
mod source_control;
mod store_outage;
mod supply_chain;
mod support;
mod tls;
mod traceability;
