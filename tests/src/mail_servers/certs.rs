//! A private certificate authority for the test mail servers.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// Names the server certificates are valid for (as DNS name and IP address SANs).
const SERVER_NAMES: [&str; 2] = ["localhost", super::LOCAL_IP];

/// A private certificate authority and a server certificate for
/// `localhost` and `127.0.0.1` signed by it (ECDSA P-256). Every CA has its
/// own name, so a certificate of another CA fails as `UnknownIssuer`.
///
/// [`TestCa::generate`] writes `ca.pem`, `cert.pem` and `key.pem` into
/// [`TestCa::dir`]. Trust `ca.pem` ([`TestCa::ca_file`]) as an extra root in
/// the client under test.
#[derive(Clone)]
pub struct TestCa {
    /// The CA certificate (PEM). For [`TestCa::other_self_signed`] this is
    /// the server certificate itself.
    pub ca_pem: String,
    /// The server certificate (PEM), SAN `localhost` and IP `127.0.0.1`.
    pub cert_pem: String,
    /// The server certificate's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Directory holding `ca.pem`, `cert.pem` and `key.pem`.
    pub dir: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCa({})", self.dir.display())
    }
}

impl TestCa {
    /// Generates a new CA and a server certificate signed by it, and writes
    /// them to `dir` (created if missing) as `ca.pem`, `cert.pem`, `key.pem`.
    ///
    /// # Panics
    /// If key generation fails or `dir` cannot be written.
    pub fn generate(dir: &Path) -> TestCa {
        let ca_key = KeyPair::generate().expect("test CA: generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("test CA: params");
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("Inboxlink test CA {}", uuid::Uuid::new_v4()),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .expect("test CA: self-sign the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("test CA: generate server key");
        let cert = server_params()
            .signed_by(&key, &issuer)
            .expect("test CA: sign the server certificate");
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            dir: dir.to_owned(),
        }
        .written()
    }

    /// A self-signed server certificate for `localhost` / `127.0.0.1`, NOT
    /// signed by any [`TestCa::generate`] CA (`ca_pem` is the certificate
    /// itself). Written to `dir/self-signed/` so it never overwrites a CA in `dir`.
    ///
    /// # Panics
    /// If key generation fails or the directory cannot be written.
    pub fn other_self_signed(dir: &Path) -> TestCa {
        let key = KeyPair::generate().expect("test CA: generate self-signed key");
        let cert = server_params()
            .self_signed(&key)
            .expect("test CA: self-sign the certificate");
        TestCa {
            ca_pem: cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            dir: dir.join("self-signed"),
        }
        .written()
    }

    fn written(self) -> TestCa {
        fs::create_dir_all(&self.dir).expect("test CA: create the certificate directory");
        for (name, pem) in [
            ("ca.pem", &self.ca_pem),
            ("cert.pem", &self.cert_pem),
            ("key.pem", &self.key_pem),
        ] {
            fs::write(self.dir.join(name), pem).expect("test CA: write a PEM file");
        }
        self
    }

    /// Path of `ca.pem` (written again if it was removed): the root
    /// certificate a client must trust to accept the server certificate.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        if !path.exists() {
            fs::create_dir_all(&self.dir).expect("test CA: create the certificate directory");
            fs::write(&path, &self.ca_pem).expect("test CA: write ca.pem");
        }
        path
    }

    /// Path of the server certificate `cert.pem`.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// Path of the server key `key.pem`.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The CA certificate in DER.
    ///
    /// # Panics
    /// Never for a [`TestCa`] made here.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("test CA: parse ca_pem")
    }

    /// A rustls client configuration (aws-lc-rs) that trusts only this CA.
    ///
    /// # Panics
    /// Never for a [`TestCa`] made here.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der())
            .expect("test CA: add the CA to a root store");
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("test CA: TLS versions of the aws-lc-rs provider")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A rustls server configuration (aws-lc-rs) presenting the server certificate.
    ///
    /// # Panics
    /// Never for a [`TestCa`] made here.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let chain = vec![
            CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
                .expect("test CA: parse cert_pem"),
        ];
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("test CA: parse key_pem");
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("test CA: TLS versions of the aws-lc-rs provider")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("test CA: server certificate and key match"),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parameters of a server certificate for `localhost` and `127.0.0.1`.
fn server_params() -> CertificateParams {
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("test CA: server names are valid SANs");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}
