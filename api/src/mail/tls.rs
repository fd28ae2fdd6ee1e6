//! Which TLS certificates the mail connections trust: the system roots plus
//! the extra CA file, verified by the platform verifier (rustls + aws-lc-rs).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Clone)]
pub struct TlsTrust {
    config: Arc<rustls::ClientConfig>,
    /// The extra CA in PEM, for lettre's TLS parameters.
    extra_pem: Arc<Vec<Vec<u8>>>,
}

impl TlsTrust {
    /// System roots plus the certificates in `extra_ca` (PEM), if given.
    pub fn new(extra_ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut extra: Vec<CertificateDer<'static>> = Vec::new();
        let mut extra_pem = Vec::new();
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| anyhow::anyhow!("INBOXLINK_EXTRA_ROOT_CA: {e}"))?;
                let der = cert.as_ref().to_vec();
                extra_pem.push(pem_encode(&der));
                extra.push(cert);
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            extra_pem: Arc::new(extra_pem),
        })
    }

    pub fn rustls(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// lettre's TLS parameters for `host`, with the same trust.
    pub fn smtp_parameters(
        &self,
        host: &str,
    ) -> Result<lettre::transport::smtp::client::TlsParameters, lettre::transport::smtp::Error>
    {
        use lettre::transport::smtp::client::{Certificate, TlsParameters};
        let mut builder = TlsParameters::builder(host.to_owned());
        for pem in self.extra_pem.iter() {
            builder = builder.add_root_certificate(Certificate::from_pem(pem)?);
        }
        builder.build_rustls()
    }
}

fn pem_encode(der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}
