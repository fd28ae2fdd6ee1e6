//! email-oauth2-proxy (PyPI `emailproxy`), the widely used single-user
//! bridge, as the bridge figures' second baseline: installed by
//! `scripts/bench.sh` into a virtualenv, run headless (`--no-gui`) with a
//! configuration written here, towards the same Dovecot and the fake
//! Entra ID.
//!
//! Its local listeners use the test CA's server certificate (IMAP with
//! implicit TLS, SMTP with STARTTLS), as the bridge's do, and it checks
//! Dovecot's certificate against the test CA (`SSL_CERT_FILE`). The account
//! uses the authorization-code flow with PKCE, the harness being the
//! browser: `--local-server-auth` prints the sign-in URL to the proxy's log
//! and receives the redirect on a local port. (Its client-credentials flow
//! gets an app-only token, which names no user; Exchange maps such a token
//! to a mailbox through the app's mailbox permission, Dovecot's `oauth2`
//! passdb cannot and refuses it with "No username returned".)

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, TestCa};

use crate::service::{free_port, rss_kib};
use crate::{CLIENT_ID, SCOPES, SECRET, TENANT};

pub struct EmailProxy {
    child: Child,
    pub imap: SocketAddr,
    pub smtp: SocketAddr,
    log: PathBuf,
    account: String,
    _dir: tempfile::TempDir,
}

impl Drop for EmailProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EmailProxy {
    /// Writes the configuration for `account` and starts the proxy with
    /// `python` (the virtualenv's), pinned to core 0 as the service is;
    /// returns when both listeners accept connections.
    pub async fn start(
        python: &Path,
        dovecot: &Dovecot,
        ca: &TestCa,
        fake: &FakeEntra,
        account: &str,
    ) -> io::Result<EmailProxy> {
        let dir = tempfile::tempdir()?;
        let (imap_port, smtp_port, redirect_port) = (free_port(), free_port(), free_port());
        let redirect_uri = format!("http://127.0.0.1:{redirect_port}/");
        fake.add_redirect_uri(CLIENT_ID, &redirect_uri);
        let authority = fake.authority();
        let (cert, key) = (ca.cert_file(), ca.key_file());
        let (cert, key) = (cert.display(), key.display());
        let config = format!(
            "[IMAP-{imap_port}]\n\
             server_address = 127.0.0.1\n\
             server_port = {dovecot_imap}\n\
             local_address = 127.0.0.1\n\
             local_certificate_path = {cert}\n\
             local_key_path = {key}\n\
             \n\
             [SMTP-{smtp_port}]\n\
             server_address = 127.0.0.1\n\
             server_port = {dovecot_smtp}\n\
             server_starttls = True\n\
             local_address = 127.0.0.1\n\
             local_starttls = True\n\
             local_certificate_path = {cert}\n\
             local_key_path = {key}\n\
             \n\
             [{account}]\n\
             permission_url = {authority}/{TENANT}/oauth2/v2.0/authorize\n\
             token_url = {authority}/{TENANT}/oauth2/v2.0/token\n\
             oauth2_scope = {SCOPES}\n\
             redirect_uri = {redirect_uri}\n\
             client_id = {CLIENT_ID}\n\
             client_secret = {SECRET}\n\
             use_pkce = True\n\
             \n\
             [emailproxy]\n\
             delete_account_token_on_password_error = False\n",
            dovecot_imap = dovecot.imap_port(),
            dovecot_smtp = dovecot.submission_port(),
        );
        let config_file = dir.path().join("emailproxy.config");
        std::fs::write(&config_file, config)?;
        let log = dir.path().join("emailproxy.log");
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(python)
            .args(["-m", "emailproxy", "--no-gui", "--local-server-auth"])
            .arg("--config-file")
            .arg(&config_file)
            .arg("--log-file")
            .arg(&log)
            .env("SSL_CERT_FILE", ca.ca_file())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log"))?)
            .spawn()?;
        let proxy = EmailProxy {
            child,
            imap: SocketAddr::from(([127, 0, 0, 1], imap_port)),
            smtp: SocketAddr::from(([127, 0, 0, 1], smtp_port)),
            log,
            account: account.to_owned(),
            _dir: dir,
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(proxy.imap).await.is_err()
            || tokio::net::TcpStream::connect(proxy.smtp).await.is_err()
        {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other(format!(
                    "email-oauth2-proxy did not listen within 30 s; its log:\n{}",
                    proxy.log_text()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(proxy)
    }

    pub fn log_text(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(stderr) = std::fs::read_to_string(self.log.with_file_name("stderr.log")) {
            text.push_str(&stderr);
        }
        text
    }

    /// The account's sign-in, once a client's first login asked for it:
    /// the URL from the proxy's log, the fake's redirect, and that redirect
    /// delivered to the proxy's local server.
    pub async fn authorize(&self, browser: &reqwest::Client) -> io::Result<()> {
        let marker = format!("to authenticate account {}: ", self.account);
        let started = Instant::now();
        let url = loop {
            let text = self.log_text();
            if let Some(url) = text.lines().find_map(|l| {
                l.split_once(&marker)
                    .and_then(|(_, rest)| rest.split_whitespace().next())
            }) {
                break url.to_owned();
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other(format!(
                    "email-oauth2-proxy asked for no sign-in; its log:\n{text}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let failed = |e: reqwest::Error| io::Error::other(e.to_string());
        let hop = browser.get(&url).send().await.map_err(failed)?;
        let location = hop
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| io::Error::other(format!("the fake answered {}", hop.status())))?
            .to_owned();
        let page = browser.get(location).send().await.map_err(failed)?;
        if page.status().is_success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "the proxy's redirect page answered {}",
                page.status()
            )))
        }
    }

    /// Resident memory of the proxy's process, in KiB.
    pub fn rss_kib(&self) -> f64 {
        rss_kib(self.child.id())
    }
}
