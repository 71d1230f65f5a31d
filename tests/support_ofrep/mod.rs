//! Test servers for the OFREP gate (on the shared loopback server, `tests/support/loopback.rs`)
//! and the real flagd evaluator.

#![allow(dead_code)]

pub mod flagd_eval;
pub mod ofrep_server;
pub mod real_flagd;

use std::sync::Arc;

use rollgate::net::{AddressPolicy, GuardedClient};

/// A client for the gates that may reach loopback, where the test servers listen.
pub fn loopback_client() -> GuardedClient {
    GuardedClient::build(loopback_policy()).expect("client")
}

/// The OFREP probe's client (HTTP/1.1, a fresh connection per call) allowed on loopback.
pub fn loopback_ofrep_client() -> GuardedClient {
    rollgate::gates::ofrep::spreading_client(loopback_policy()).expect("client")
}

/// The defaults plus loopback.
pub fn loopback_policy() -> Arc<AddressPolicy> {
    Arc::new(AddressPolicy::new(vec![
        "127.0.0.0/8".parse().expect("rule"),
        "::1".parse().expect("rule"),
    ]))
}
