//! End-to-end tests: the service is spawned in-process on port 0 over a
//! fresh database per test (a SQLite file, or a new database in the throw-away
//! PostgreSQL cluster that `scripts/test.sh` starts) and driven through the
//! SDK or plain HTTP. Every backend-dependent test runs on both backends.

mod helpers;

mod app_credentials;
mod check;
mod errors;
mod isolation;
mod jwt;
mod keepalive;
mod limits;
mod mailboxes;
mod operations;
mod roles;
mod secrets;
mod security;
mod signin;
mod surface;
