//! The checks that need no database: the public URL, the JWT key, the extra
//! CA, the master keys, and that the secret files are private.

use std::net::IpAddr;

use super::{Level, Report};
use crate::config::{JwtKey, Settings};

pub(super) fn check_config(settings: &Settings, report: &mut Report) {
    let public = &settings.public_url;
    if public.scheme() == "https" {
        report.push(Level::Ok, "public url", public.as_str());
    } else if is_loopback(public) {
        report.push(
            Level::Ok,
            "public url",
            format!("{public} (loopback: plain HTTP is fine)"),
        );
    } else {
        report.push(
            Level::Warn,
            "public url",
            format!(
                "{public} is not https: Microsoft accepts http redirect URIs only for localhost; put TLS in front and set INBOXLINK_PUBLIC_URL to its https address"
            ),
        );
    }

    match &settings.jwt.key {
        JwtKey::Hs256(_) => report.push(Level::Ok, "jwt key", "HS256 shared secret"),
        JwtKey::PublicKeyPem { path, .. } => report.push(
            Level::Ok,
            "jwt key",
            format!("public key {}", path.display()),
        ),
        JwtKey::JwksUrl(url) if url.scheme() != "https" && !is_loopback(url) => report.push(
            Level::Warn,
            "jwt key",
            format!("JWKS {url} is not fetched over https"),
        ),
        JwtKey::JwksUrl(url) => report.push(Level::Ok, "jwt key", format!("JWKS {url}")),
    }

    if let Some(path) = &settings.extra_root_ca {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        match std::fs::read(path) {
            Err(e) => report.push(
                Level::Fail,
                "extra root ca",
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(pem) => {
                let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
                match certs {
                    Ok(certs) if !certs.is_empty() => report.push(
                        Level::Ok,
                        "extra root ca",
                        format!("{}: {} certificate(s)", path.display(), certs.len()),
                    ),
                    Ok(_) => report.push(
                        Level::Fail,
                        "extra root ca",
                        format!("{} holds no PEM certificate", path.display()),
                    ),
                    Err(e) => report.push(
                        Level::Fail,
                        "extra root ca",
                        format!("{} is not PEM: {e}", path.display()),
                    ),
                }
            }
        }
    }

    let ids: Vec<&str> = settings.master_keys.iter().map(|k| k.id()).collect();
    report.push(
        Level::Ok,
        "master keys",
        format!(
            "{} configured ({}); new values are encrypted with key {}",
            ids.len(),
            ids.join(", "),
            ids.first().copied().unwrap_or("-")
        ),
    );
}

/// The data dir, the generated keys and the `_FILE` secrets are private.
pub(super) fn check_file_modes(settings: &Settings, report: &mut Report) {
    let modes = crate::ops::file_modes::check(settings);
    for exposed in &modes.exposed {
        report.push(Level::Warn, "file modes", exposed.message());
    }
    if modes.exposed.is_empty() && modes.checked > 0 {
        report.push(
            Level::Ok,
            "file modes",
            format!(
                "the data dir and secret files ({} checked) are private",
                modes.checked
            ),
        );
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for (url, expected) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080", true),
            ("http://[::1]:8080", true),
            ("http://inboxlink.example.com", false),
            ("http://10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(&url.parse().unwrap()), expected, "{url}");
        }
    }
}
