//! The bridge's TLS: the configured certificate and key, or a self-signed
//! certificate generated into the data dir on the first start and never
//! overwritten; a rustls server configuration (TLS 1.2 and 1.3, aws-lc-rs)
//! and the certificate's SHA-256 fingerprint, which clients that do not
//! trust it can pin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::bridge::BridgeCertificate;

/// The generated certificate and key, in the data dir.
pub const CERT_FILE: &str = "bridge-tls-cert.pem";
pub const KEY_FILE: &str = "bridge-tls-key.pem";

/// The server side of the bridge's TLS.
pub struct BridgeTls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), upper-case hex in pairs
    /// separated by colons, as `openssl x509 -fingerprint -sha256` shows it.
    pub fingerprint: String,
    /// The certificate was generated (now or on an earlier start), not configured.
    pub generated: bool,
    /// Where the certificate is.
    pub cert_path: PathBuf,
}

impl BridgeTls {
    /// Loads the configured certificate, or the generated one (generating it
    /// when the data dir has none yet).
    pub fn load(
        certificate: &BridgeCertificate,
        data_dir: &Path,
        names: &[String],
    ) -> anyhow::Result<Self> {
        let (cert_path, key_path, generated) = match certificate {
            BridgeCertificate::Files { cert, key } => (cert.clone(), key.clone(), false),
            BridgeCertificate::Generated => {
                let (cert, key) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
                match (cert.exists(), key.exists()) {
                    (true, true) => {}
                    (false, false) => generate(&cert, &key, names)?,
                    _ => anyhow::bail!(
                        "the bridge's generated certificate is incomplete: {} and {} must both exist (remove the other to generate a new pair, or set INBOXLINK_BRIDGE_TLS_CERT_FILE and INBOXLINK_BRIDGE_TLS_KEY_FILE)",
                        cert.display(),
                        key.display()
                    ),
                }
                (cert, key, true)
            }
        };
        let (cert_var, key_var) = if generated {
            (
                "the bridge's generated certificate",
                "the bridge's generated key",
            )
        } else {
            (
                "INBOXLINK_BRIDGE_TLS_CERT_FILE",
                "INBOXLINK_BRIDGE_TLS_KEY_FILE",
            )
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .with_context(|| format!("{cert_var}: cannot read {}", cert_path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{cert_var}: {} is not PEM", cert_path.display()))?;
        let leaf = chain
            .first()
            .with_context(|| format!("{cert_var}: {} holds no certificate", cert_path.display()))?;
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_file(&key_path).with_context(|| {
            format!("{key_var}: {} holds no PEM private key", key_path.display())
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .with_context(|| format!("{key_var}: not the key of the certificate, or not usable"))?;
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            generated,
            cert_path,
        })
    }
}

/// `AB:CD:…`, the SHA-256 of a certificate (the check trusts it by this).
pub use crate::mail::bridge_fingerprint as fingerprint;

/// A self-signed certificate for `names` (host names and IP addresses),
/// written with `create_new`: an existing file is never overwritten. The key
/// is readable by the service's user only.
fn generate(cert: &Path, key: &Path, names: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .context("the bridge's certificate: the names are not valid")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Inboxlink bridge");
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let pair = rcgen::KeyPair::generate().context("the bridge's key")?;
    let issued = params
        .self_signed(&pair)
        .context("the bridge's certificate")?;
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let write = |path: &Path, text: &str, mode: u32| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(())
    };
    write(key, &pair.serialize_pem(), 0o600)?;
    write(cert, &issued.pem(), 0o644)?;
    tracing::info!(certificate = %cert.display(), "generated the bridge's self-signed certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first =
            BridgeTls::load(&BridgeCertificate::Generated, dir.path(), &names).expect("generated");
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let pem = std::fs::read(dir.path().join(CERT_FILE)).expect("cert");
        let again =
            BridgeTls::load(&BridgeCertificate::Generated, dir.path(), &names).expect("loaded");
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(
            std::fs::read(dir.path().join(CERT_FILE)).expect("cert"),
            pem
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
        // Configured files: the same pair, by path.
        let files = BridgeCertificate::Files {
            cert: dir.path().join(CERT_FILE),
            key: dir.path().join(KEY_FILE),
        };
        let configured = BridgeTls::load(&files, Path::new("/nonexistent"), &names).expect("files");
        assert_eq!(
            (configured.fingerprint, configured.generated),
            (first.fingerprint, false)
        );
    }

    #[test]
    fn a_half_pair_or_a_wrong_key_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let names = ["localhost".to_owned()];
        BridgeTls::load(&BridgeCertificate::Generated, dir.path(), &names).expect("generated");
        std::fs::remove_file(dir.path().join(KEY_FILE)).expect("rm");
        let err = BridgeTls::load(&BridgeCertificate::Generated, dir.path(), &names)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("incomplete"), "{err:#}");

        let other = tempfile::tempdir().expect("dir");
        BridgeTls::load(&BridgeCertificate::Generated, other.path(), &names).expect("generated");
        let mismatched = BridgeCertificate::Files {
            cert: dir.path().join(CERT_FILE),
            key: other.path().join(KEY_FILE),
        };
        let err = BridgeTls::load(&mismatched, dir.path(), &names)
            .err()
            .expect("refused");
        assert!(
            format!("{err:#}").contains("INBOXLINK_BRIDGE_TLS_KEY_FILE"),
            "{err:#}"
        );
        let missing = BridgeCertificate::Files {
            cert: dir.path().join("nope.pem"),
            key: other.path().join(KEY_FILE),
        };
        let err = BridgeTls::load(&missing, dir.path(), &names)
            .err()
            .expect("refused");
        assert!(
            format!("{err:#}").contains("INBOXLINK_BRIDGE_TLS_CERT_FILE"),
            "{err:#}"
        );
    }
}
