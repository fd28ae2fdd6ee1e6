//! A TLS server with a certificate no test CA signed.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_rustls::rustls;

use super::acceptor::Acceptor;
use super::{CLIENT_TIMEOUT, TestCa};

#[derive(Debug, Default)]
struct Counters {
    handshakes: AtomicUsize,
    received_bytes: AtomicUsize,
}

/// A TLS listener on `127.0.0.1` (implicit TLS, like IMAP on 993) whose
/// certificate is self-signed for `localhost` / `127.0.0.1`
/// ([`TestCa::other_self_signed`]), so a client that trusts only a
/// [`TestCa`] must reject it. After a completed handshake it greets like an
/// IMAP server (`* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ...`), answers
/// every line with a tagged `NO`, and counts the bytes it received after the
/// handshake: [`UntrustedTlsServer::received_bytes`] `== 0` proves that no
/// credentials were sent.
///
/// Served by std threads; stops on drop.
#[derive(Debug)]
pub struct UntrustedTlsServer {
    cert: TestCa,
    counters: Arc<Counters>,
    acceptor: Acceptor,
}

impl UntrustedTlsServer {
    /// Generates a self-signed certificate under `dir/self-signed/` and
    /// starts listening on a free port of `127.0.0.1`.
    ///
    /// # Panics
    /// If no local port can be bound or the certificate cannot be written.
    pub fn start(dir: &Path) -> UntrustedTlsServer {
        let cert = TestCa::other_self_signed(dir);
        let config = cert.server_config();
        let counters = Arc::new(Counters::default());
        let counted = Arc::clone(&counters);
        let acceptor = Acceptor::start("untrusted-tls", move |stream| {
            drop(session(stream, Arc::clone(&config), &counted));
        });
        UntrustedTlsServer {
            cert,
            counters,
            acceptor,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.acceptor.addr().to_string()
    }

    /// The server's certificate (self-signed; `ca_pem == cert_pem`), e.g.
    /// to build a client that does trust it, as a positive control.
    pub fn certificate(&self) -> &TestCa {
        &self.cert
    }

    /// Application bytes received after completed TLS handshakes, over all
    /// connections so far.
    pub fn received_bytes(&self) -> usize {
        self.counters.received_bytes.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.acceptor.connections()
    }

    /// TLS handshakes that completed (the client accepted the certificate).
    pub fn completed_handshakes(&self) -> usize {
        self.counters.handshakes.load(Ordering::SeqCst)
    }
}

fn session(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    counters: &Counters,
) -> io::Result<()> {
    tcp.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    tcp.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    counters.handshakes.fetch_add(1, Ordering::SeqCst);
    let tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(tls);
    reader.get_mut().write_all(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] Untrusted test server ready.\r\n",
    )?;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        counters.received_bytes.fetch_add(n, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&line);
        let tag = text.split_whitespace().next().unwrap_or("*");
        let reply = format!("{tag} NO [AUTHENTICATIONFAILED] untrusted test server\r\n");
        reader.get_mut().write_all(reply.as_bytes())?;
    }
}
