//! Inboxlink: connects organisation mailboxes on Microsoft 365 to the
//! applications that use them, over OAuth 2.0.
//!
//! Layers, outermost first: [`http`] (thin handlers) -> [`service`] (use cases)
//! -> [`store`] (diesel over SQLite or PostgreSQL) -> [`crypto`] / [`config`].
//! Persistence never sees HTTP types; handlers never see diesel. [`ops`] holds
//! the operator commands (`doctor`, `rekey`) over the same store and cipher.

pub mod auth;
pub mod bridge;
pub mod certificate;
pub mod cli;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod hooks;
pub mod http;
pub mod idp;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ops;
#[cfg(test)]
mod proptests;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use error::Error;
pub use startup::Application;
