//! Portcullis, a deployment firewall. See ARCHITECTURE.md for the codemap.

pub mod adapters;
pub mod domain;
pub mod policy;
pub mod store;
