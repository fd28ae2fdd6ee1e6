//! End-to-end tests: the service is spawned in-process on port 0 over a
//! fresh database per test (a SQLite file, or a new database in the throw-away
//! PostgreSQL cluster that `scripts/test.sh` starts) and driven through the
//! SDK or plain HTTP. Every backend-dependent test runs on both backends.
//! The fixtures (`TestApp::new().with_fake_entra().with_mailbox()`, ...) are
//! in `helpers/`.

mod helpers;

mod app_credentials;
mod app_only;
mod bridge;
mod bridge_disconnects;
mod bridge_imap;
mod bridge_smtp;
mod callback;
mod certificates;
mod check;
mod clouds;
mod consent;
mod crash;
mod device_code;
mod email_alerts;
mod errors;
mod events;
mod graph;
mod isolation;
mod jwt;
mod keepalive;
mod keeper;
mod limits;
mod mailboxes;
mod operations;
mod read_path;
mod roles;
mod secrets;
mod security;
mod sign_in;
mod surface;
mod webhooks;
