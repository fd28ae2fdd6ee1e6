//! Real mail servers for the mailbox connection check's tests.
//!
//! - [`TestCa`]: a private certificate authority and a server certificate for
//!   `localhost` / `127.0.0.1` signed by it (rcgen, no OpenSSL).
//! - [`Dovecot`]: a private Dovecot (a real IMAP server and SMTP submission
//!   server) started from a config in a temporary directory, on free high
//!   ports of `127.0.0.1`: IMAP with implicit TLS and submission with
//!   STARTTLS, both accepting only SASL `XOAUTH2` and `OAUTHBEARER`. Bearer
//!   tokens are validated by POSTing them to an introspection URL, normally
//!   [`FakeEntra::introspection_url`](crate::fake_entra::FakeEntra::introspection_url).
//!   Mail that is submitted is relayed to an [`SmtpSink`].
//! - [`SmtpSink`]: a tiny plain SMTP server (no STARTTLS, no AUTH) that
//!   records every message; Dovecot's relay, and "a server without STARTTLS".
//! - [`UntrustedTlsServer`]: a TLS listener whose certificate no [`TestCa`]
//!   signed and which greets like an IMAP server, counting bytes received
//!   after the handshake ("certificate not trusted" tests).
//!
//! Dovecot must be installed (`scripts/install-test-deps.sh` installs
//! `dovecot-imapd` and `dovecot-submissiond`) and the tests must run as root,
//! as they do in CI: Dovecot switches to its own users. A missing Dovecot is
//! a panic, never a silently skipped test; see [`dovecot_binary`].
//!
//! Everything here is synchronous (std threads and processes), so it works
//! from plain `#[test]`s and from `#[tokio::test(flavor = "multi_thread")]`.
//! [`Dovecot::start`] and [`Dovecot::stop`] block for up to a few seconds.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inboxlink_tests::fake_entra::FakeEntra;
//! use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};
//! let entra = FakeEntra::start().await;
//! let dir = tempfile::tempdir()?;
//! let ca = TestCa::generate(dir.path());
//! let sink = SmtpSink::start();
//! let dovecot = Dovecot::start(&entra.introspection_url(), &ca, &sink)?;
//! dovecot.deliver("alice@contoso.example", 3);
//! // INBOXLINK_IMAP_ENDPOINT = dovecot.imap_endpoint(),
//! // INBOXLINK_SMTP_ENDPOINT = dovecot.submission_endpoint(),
//! // extra trusted root = ca.ca_file()
//! # Ok(()) }
//! ```

mod acceptor;
mod certs;
mod dovecot;
mod smtp_sink;
mod untrusted;

pub use certs::TestCa;
pub use dovecot::{Dovecot, dovecot_binary};
pub use smtp_sink::{ReceivedMessage, SmtpSink};
pub use untrusted::UntrustedTlsServer;

/// Host name that the servers listen on and that [`TestCa`] certificates
/// are valid for (with `localhost`).
pub const LOCAL_IP: &str = "127.0.0.1";

/// How long a server thread waits for a silent client before hanging up.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
