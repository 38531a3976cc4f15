//! Test support for sluice crates (not published): conformance suites that every source
//! and every sink must pass, driven against the real systems.

pub mod sink;
pub mod source;
