//! The SDK used exactly as its documentation shows: `readme.rs` holds the
//! Rust block of the repository README's section "The SDK", `sdk_readme.rs`
//! the Rust blocks of `sdk/README.md`, verbatim (`tests/tests/generated.rs`
//! keeps them equal). This crate is outside the workspace, like an
//! integrator's, and `scripts/test.sh` builds it: an SDK change that breaks
//! a documented call fails the test command.

pub mod readme;
pub mod sdk_readme;
