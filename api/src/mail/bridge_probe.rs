//! The check's `bridge` step: a login through the bridge's own IMAP
//! listener with a one-time credential, as a legacy client would log in,
//! then LOGOUT. The bridge's answer to the login proves the whole path: the
//! listener and its TLS, the password check, the token keeper and the
//! upstream XOAUTH2 login. The certificate is trusted by its SHA-256
//! fingerprint (the one `GET /bridge` shows), whoever issued it.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::StepFailure;
use crate::codes::Code;

/// Longest line the step reads from the listener.
const LINE_MAX: u64 = 16 * 1024;

/// Accepts exactly the certificate with this SHA-256 fingerprint; the
/// handshake's signatures are verified as usual.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// `AB:CD:…`, as the bridge shows it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where to reach a listener bound to `bind` from this host.
fn reachable(bind: SocketAddr) -> SocketAddr {
    let mut addr = bind;
    if bind.ip().is_unspecified() {
        addr.set_ip(match bind {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn failure(text: &str, hint: &str) -> StepFailure {
    StepFailure::new(Code::BridgeLoginFailed, Some(text.to_owned()), hint)
}

/// Logs in through the IMAP listener at `bind` (certificate `fingerprint`)
/// as `username` with the one-time `password`, then logs out. `Ok`: the
/// bridge's answer to the login.
pub async fn imap_login(
    bind: SocketAddr,
    fingerprint: &str,
    username: &str,
    password: &SecretString,
) -> Result<((), Option<String>), StepFailure> {
    let addr = reachable(bind);
    let unreachable = |e: std::io::Error| {
        failure(
            &e.to_string(),
            "The bridge's IMAP listener does not answer on this instance: check INBOXLINK_BRIDGE_IMAP_BIND and the service's log.",
        )
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(unreachable)?;
    let _ = tcp.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Pinned {
        fingerprint: fingerprint.to_owned(),
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failure(&e.to_string(), "The bridge's TLS cannot be set up."))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            failure(
                &e.to_string(),
                "The bridge's IMAP listener did not complete TLS with its own certificate.",
            )
        })?;
    let mut stream = BufReader::new(tls);
    let greeting = read_line(&mut stream).await?;
    if !greeting.starts_with("* OK") {
        return Err(failure(
            &greeting,
            "The bridge's IMAP listener did not greet as expected.",
        ));
    }
    let command = format!(
        "p1 LOGIN {} {}\r\n",
        quoted(username),
        quoted(password.expose_secret())
    );
    send(&mut stream, &command).await?;
    let answer = tagged(&mut stream, "p1 ").await?;
    if !answer.starts_with("p1 OK") {
        return Err(failure(
            &answer,
            "The bridge refused its own login: its answer says why (usually the mailbox's server refusing the token; see the IMAP steps and the mailbox's status).",
        ));
    }
    send(&mut stream, "p2 LOGOUT\r\n").await?;
    let _ = tagged(&mut stream, "p2 ").await;
    Ok(((), Some(without_capabilities(&answer))))
}

/// `p1 OK [CAPABILITY …] text` without the (long) list of capabilities.
pub(crate) fn without_capabilities(answer: &str) -> String {
    match answer.split_once(" [CAPABILITY ") {
        Some((head, rest)) => match rest.split_once("] ") {
            Some((_, text)) => format!("{head} {text}"),
            None => head.to_owned(),
        },
        None => answer.to_owned(),
    }
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn send<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    text: &str,
) -> Result<(), StepFailure> {
    let broken = |e: std::io::Error| failure(&e.to_string(), "The bridge closed the connection.");
    stream.write_all(text.as_bytes()).await.map_err(broken)?;
    stream.flush().await.map_err(broken)
}

async fn read_line<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> Result<String, StepFailure> {
    let mut line = Vec::new();
    let read = tokio::io::AsyncReadExt::take(&mut *stream, LINE_MAX)
        .read_until(b'\n', &mut line)
        .await;
    match read {
        Ok(n) if n > 0 => Ok(String::from_utf8_lossy(&line).trim_end().to_owned()),
        _ => Err(failure(
            "connection closed",
            "The bridge closed the connection.",
        )),
    }
}

/// The tagged answer starting with `tag`, after any untagged lines.
async fn tagged<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    tag: &str,
) -> Result<String, StepFailure> {
    loop {
        let line = read_line(stream).await?;
        if line.starts_with(tag) {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_answer_leaves_out_the_capabilities() {
        assert_eq!(
            without_capabilities("p1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in"),
            "p1 OK Logged in"
        );
        assert_eq!(without_capabilities("p1 OK Logged in"), "p1 OK Logged in");
    }
}
