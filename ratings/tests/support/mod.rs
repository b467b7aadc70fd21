//! Helpers of the ratings service's integration tests (beacon-testkit's).

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;
