//! Helpers of the client library's integration tests: beacon-testkit's,
//! plus test backends and a registry-backends-client fixture.

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

pub mod backend;
pub mod cluster;
