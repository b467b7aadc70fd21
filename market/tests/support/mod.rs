//! Helpers of the market's integration tests: beacon-testkit's, plus the
//! demo's topology as processes and a headless browser.

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

pub mod browser;
pub mod demo;
pub mod stores;
