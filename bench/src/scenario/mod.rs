//! The measurements, one module each, in the order of the table; each adds
//! its rows (and their goals) to it.

pub mod bridge;
pub mod check;
pub mod crypto;
pub mod http_reads;
pub mod refresh;
pub mod resources;
pub mod sign_in;
pub mod webhooks;
