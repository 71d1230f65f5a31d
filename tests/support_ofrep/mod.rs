//! Test servers for the OFREP and HTTP-check gates.

#![allow(dead_code)]

pub mod flagd_eval;
pub mod http_server;
pub mod ofrep_server;
pub mod real_flagd;
