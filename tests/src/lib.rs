//! Test support for Inboxlink's end-to-end tests.
//!
//! The end-to-end tests themselves live in `tests/`. This library holds what
//! they share:
//!
//! - [`fake_entra`]: a local fake of the Microsoft identity platform (Entra ID
//!   v2.0 endpoints: authorize, token, admin consent) plus a token
//!   introspection endpoint for Dovecot, so the service's OAuth flows can be
//!   exercised without Microsoft.
//!
//! The sandbox (`src/bin/sandbox.rs`) and the benchmark (the crate `bench/`)
//! run on the same fakes. [`receiver`] is a webhook receiver that records what it gets.

pub mod fake_entra;
pub mod mail_servers;
pub mod receiver;
pub mod sandbox;
