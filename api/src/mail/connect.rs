//! How a failed connection attempt is told: the TLS errors apart (an
//! untrusted certificate, one for another name, a failed handshake), a
//! timeout, and otherwise an unreachable server - each with what to do.

use crate::codes::Code;
use crate::config::Endpoint;

use super::StepFailure;

/// Maps an I/O or TLS error of a connection attempt to a step failure. The
/// error may be an I/O error, a TLS error or one wrapping either (lettre's):
/// its chain is searched for the rustls error, and only without one is the
/// text read.
pub fn connect_failure(
    what: &str,
    endpoint: &Endpoint,
    e: &(dyn std::error::Error + 'static),
) -> StepFailure {
    let text = e.to_string();
    if let Some(tls) = find_rustls_error(e) {
        return tls_failure(what, endpoint, tls, text);
    }
    if find_io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
        return StepFailure::new(
            Code::Timeout,
            Some(text),
            format!(
                "The {what} server did not answer in time; check the endpoint and the network, then try again."
            ),
        );
    }
    let lower = text.to_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
    {
        if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            return name_mismatch(what, endpoint, text);
        }
        return untrusted(what, text);
    }
    if find_io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        || lower.contains("tls")
        || lower.contains("handshake")
    {
        return tls_failed(what, text);
    }
    StepFailure::new(
        Code::Unreachable,
        Some(text),
        format!(
            "Cannot connect to {}:{}: check the endpoint, DNS, firewall and that the server is up.",
            endpoint.host, endpoint.port
        ),
    )
}

fn tls_failure(what: &str, endpoint: &Endpoint, e: &rustls::Error, text: String) -> StepFailure {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => name_mismatch(what, endpoint, text),
        rustls::Error::InvalidCertificate(_) => untrusted(what, text),
        _ => tls_failed(what, text),
    }
}

fn name_mismatch(what: &str, endpoint: &Endpoint, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsNameMismatch,
        Some(text),
        format!(
            "The {what} server's certificate is not valid for {}: check the configured endpoint name. No credentials were sent.",
            endpoint.host
        ),
    )
}

fn untrusted(what: &str, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsCertificateUntrusted,
        Some(text),
        format!(
            "The {what} server's certificate is not trusted: check the endpoint, or add its CA with INBOXLINK_EXTRA_ROOT_CA. No credentials were sent."
        ),
    )
}

fn tls_failed(what: &str, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsFailed,
        Some(text),
        format!("The TLS handshake with the {what} server failed; no credentials were sent."),
    )
}

/// The errors of `e`'s chain, looking inside I/O errors too (whose `source`
/// skips the error they wrap).
fn error_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        chain.push(err);
        if chain.len() > 16 {
            break;
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    chain
}

fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    error_chain(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<rustls::Error>())
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    error_chain(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<std::io::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::script::{assert_told, endpoint};

    #[test]
    fn tls_errors_are_told_apart() {
        use rustls::CertificateError;
        let ep = Endpoint {
            host: "imap.contoso.example".into(),
            port: 993,
        };
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);

        let unknown = io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let f = connect_failure("IMAP", &ep, &unknown);
        let hint = ["INBOXLINK_EXTRA_ROOT_CA", "No credentials were sent"];
        assert_told(&f, Code::TlsCertificateUntrusted, &hint);

        let expired = io(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(
            connect_failure("IMAP", &ep, &expired).code,
            Code::TlsCertificateUntrusted
        );

        let expected =
            rustls::pki_types::ServerName::try_from("imap.contoso.example").expect("name");
        let mismatch = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: expected.to_owned(),
                presented: vec!["DnsName(\"localhost\")".into()],
            },
        ));
        let f = connect_failure("IMAP", &ep, &mismatch);
        assert_told(&f, Code::TlsNameMismatch, &["imap.contoso.example"]);
        let bare = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert_eq!(
            connect_failure("IMAP", &ep, &bare).code,
            Code::TlsNameMismatch
        );

        let alert = io(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(connect_failure("IMAP", &ep, &alert).code, Code::TlsFailed);
    }

    /// Wraps an error the way lettre's `tls error: …` does.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "tls error: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_wrapped_tls_error_is_found_in_the_chain() {
        let ep = endpoint(587);
        let mismatch = Wrapped(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        ));
        let f = connect_failure("SMTP", &ep, &mismatch);
        assert_eq!(f.code, Code::TlsNameMismatch);
        assert!(f.response.expect("text").starts_with("tls error: "));

        let untrusted = Wrapped(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            connect_failure("SMTP", &ep, &untrusted).code,
            Code::TlsCertificateUntrusted
        );
    }

    #[test]
    fn io_errors_are_unreachable_or_timeout() {
        let ep = endpoint(1);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let f = connect_failure("IMAP", &ep, &refused);
        assert_told(&f, Code::Unreachable, &["127.0.0.1:1"]);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(connect_failure("IMAP", &ep, &timed_out).code, Code::Timeout);
    }
}
