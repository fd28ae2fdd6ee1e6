//! A local sandbox for frontend developers and the Postman collection:
//! the real service wired to a fake Microsoft sign-in and private mail servers.
//!
//! `scripts/sandbox.sh` (= `cargo run -p inboxlink-tests --bin inboxlink-sandbox`)
//! starts, in one process:
//!
//! - the fake Entra ID ([`FakeEntra`]) with one registered app ([`TENANT_ID`],
//!   [`CLIENT_ID`], [`CLIENT_SECRET`]); its authorize endpoint approves any
//!   address given as `login_hint`, so every mailbox "signs in" at once;
//! - unless `--no-mail`: a private Dovecot (IMAP with TLS, SMTP submission with
//!   STARTTLS) that validates tokens through the fake's introspection endpoint,
//!   an SMTP sink as its relay, and the test CA the service trusts;
//! - a webhook receiver ([`Receiver`]) on a free port of `127.0.0.1` (or
//!   `--receiver-port`) that answers 200 to everything and, with
//!   `--receiver`, prints each delivery;
//! - the real service ([`inboxlink::Application`]) on `127.0.0.1:8080` (or
//!   `--port`) with a fresh SQLite data dir, pointed at all of the above, and
//!   allowing `http://` and local webhook URLs
//!   (`INBOXLINK_WEBHOOK_ALLOW_PRIVATE=true`) so that webhooks can reach the
//!   receiver.
//!
//! It prints the base URL, tokens for every role of the organisation
//! [`ORG`], the fake app registration's values, the mailbox addresses to
//! use and how to point a webhook at the receiver, and writes the same values as a Postman environment
//! ([`Sandbox::env_file`]) for newman.
//!
//! This lives in the test crate only: the production binary never contains
//! the fake.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inboxlink::auth::mint::{TokenRequest, mint};
use inboxlink::config::{Settings, Source};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::fake_entra::FakeEntra;
use crate::mail_servers::{Dovecot, SmtpSink, TestCa};
use crate::receiver::Receiver;

/// The organisation the sandbox's tokens act for.
pub const ORG: &str = "sandbox";
/// Directory (tenant) ID of the fake app registration.
pub const TENANT_ID: &str = "3f6c2a9e-5b1d-4e7a-8c0f-9d2b4a6e8c10";
/// A verified domain of the fake tenant (usable as `tenant_id` too).
pub const TENANT_DOMAIN: &str = "sandbox.example";
/// Application (client) ID of the fake app registration.
pub const CLIENT_ID: &str = "8e0b7c52-6a1f-4d3e-b2c9-5f7a1d3e9b04";
/// The client secret's Value of the fake app registration.
pub const CLIENT_SECRET: &str = "Sbx8Q~sandbox.secret-Value_not-for-production";
/// Mailbox addresses printed for people to use; any address signs in.
pub const MAILBOXES: [&str; 3] = [
    "podatelna@sandbox.example",
    "info@sandbox.example",
    "faktury@sandbox.example",
];
/// Messages put into each printed mailbox's INBOX when Dovecot runs.
const MESSAGES_PER_MAILBOX: usize = 3;
/// The roles a token is minted for, in the order printed.
pub const ROLES: [&str; 4] = ["admin", "operator", "viewer", "service"];
/// Where the IMAP/SMTP endpoints point with `--no-mail` (nothing listens: checks say `unreachable`).
const NO_MAIL_ENDPOINT: &str = "127.0.0.1:9";
/// Return URLs a frontend on a usual dev-server port may pass to refresh.
const DEFAULT_RETURN_URLS: [&str; 4] = [
    "http://localhost:3000/",
    "http://127.0.0.1:3000/",
    "http://localhost:5173/",
    "http://127.0.0.1:5173/",
];

/// The keys of the Postman environment the sandbox writes, in order.
/// `postman/inboxlink.postman_environment.json` has exactly these keys.
pub const ENVIRONMENT_KEYS: [&str; 13] = [
    "baseUrl",
    "org",
    "adminToken",
    "operatorToken",
    "viewerToken",
    "serviceToken",
    "metricsToken",
    "tenantId",
    "clientId",
    "clientSecret",
    "mailbox",
    "mailServers",
    "receiverUrl",
];
/// The path of the receiver's URL that the banner and the environment give.
pub const RECEIVER_PATH: &str = "/webhook";

/// How to start the sandbox (the command-line options).
#[derive(Debug, Clone)]
pub struct Options {
    /// Port on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// Keep the service's data here instead of a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// Start Dovecot and the SMTP sink (needs Dovecot installed and root).
    pub mail: bool,
    /// Write the Postman environment here instead of into the temp dir.
    pub env_file: Option<PathBuf>,
    /// Lifetime of the printed tokens.
    pub token_ttl: Duration,
    /// Return URLs allowed besides the usual dev-server ones.
    pub return_urls: Vec<String>,
    /// The service's log filter; `None`: `INBOXLINK_LOG` or `info`.
    pub log: Option<String>,
    /// Print each request the webhook receiver gets (`--receiver`).
    pub print_deliveries: bool,
    /// The webhook receiver's port on 127.0.0.1 (0: a free one).
    pub receiver_port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 8080,
            data_dir: None,
            mail: true,
            env_file: None,
            token_ttl: Duration::from_secs(12 * 3600),
            return_urls: Vec::new(),
            log: None,
            print_deliveries: false,
            receiver_port: 0,
        }
    }
}

/// What `inboxlink-sandbox --help` prints.
pub const USAGE: &str = "\
inboxlink-sandbox: the Inboxlink service with a fake Microsoft sign-in and private mail servers

usage: scripts/sandbox.sh [OPTIONS]
       cargo run -p inboxlink-tests --bin inboxlink-sandbox -- [OPTIONS]

options:
  --port PORT          listen on 127.0.0.1:PORT (default 8080; 0 = a free port)
  --data-dir DIR       keep the service's SQLite database and keys in DIR
                       (default: a fresh temp dir, removed on exit)
  --no-mail            do not start Dovecot (connection checks then fail as unreachable)
  --env-file FILE      write the Postman environment (live tokens) to FILE
                       (default: <temp dir>/sandbox.postman_environment.json)
  --token-ttl HOURS    lifetime of the printed tokens (default 12; beyond 24
                       the sandbox's service accepts tokens that long)
  --return-url URL     also allow URL as a refresh `return_url` (repeatable;
                       http://localhost:3000/ and :5173/ are allowed already)
  --receiver           print every request the sandbox's webhook receiver gets
                       (it always runs and answers 200; the banner gives its URL)
  --receiver-port PORT the webhook receiver's port on 127.0.0.1 (default: a free one)
  -h, --help           this text

Dovecot needs root and the packages dovecot-imapd and dovecot-submissiond:
  sudo scripts/install-test-deps.sh";

/// Parses the command line (without the program name). `Ok(None)` for `--help`.
///
/// # Errors
/// An unknown option or a malformed value, as one line.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("a port")?;
                options.port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {v}"))?;
            }
            "--data-dir" => options.data_dir = Some(PathBuf::from(value("a directory")?)),
            "--env-file" => options.env_file = Some(PathBuf::from(value("a file")?)),
            "--no-mail" => options.mail = false,
            "--token-ttl" => {
                let v = value("a number of hours")?;
                let hours: u64 = v
                    .parse()
                    .ok()
                    .filter(|h| (1..=24 * 365).contains(h))
                    .ok_or_else(|| format!("--token-ttl: not a number of hours (1..8760): {v}"))?;
                options.token_ttl = Duration::from_secs(hours * 3600);
            }
            "--return-url" => options.return_urls.push(value("a URL")?),
            "--receiver" => options.print_deliveries = true,
            "--receiver-port" => {
                let v = value("a port")?;
                options.receiver_port = v
                    .parse()
                    .map_err(|_| format!("--receiver-port: not a port number: {v}"))?;
            }
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
    }
    Ok(Some(options))
}

/// A minted token per role.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub service: String,
}

impl Tokens {
    fn by_role(&self) -> [(&'static str, &str); 4] {
        [
            ("admin", &self.admin),
            ("operator", &self.operator),
            ("viewer", &self.viewer),
            ("service", &self.service),
        ]
    }
}

/// The private mail servers.
struct Mail {
    dovecot: Dovecot,
    _sink: SmtpSink,
}

/// A running sandbox. [`Sandbox::stop`] (or dropping it) stops Dovecot and
/// removes the temp dir; the service stops with the process.
pub struct Sandbox {
    base_url: String,
    data_dir: PathBuf,
    data_dir_is_temp: bool,
    env_file: PathBuf,
    tokens: Tokens,
    /// `INBOXLINK_METRICS_TOKEN`, new on every start.
    metrics_token: String,
    fake: FakeEntra,
    mail: Option<Mail>,
    receiver: Receiver,
    print_deliveries: bool,
    /// The bridge's listeners (with the mail servers only).
    bridge: inboxlink::service::bridge::BridgeStatus,
    server: Option<JoinHandle<std::io::Result<()>>>,
    // Last: removed after Dovecot stopped (its config and mail live elsewhere,
    // but the CA it was started with is in here).
    dir: TempDir,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts the fake Entra ID, the mail servers (unless `!options.mail`)
    /// and the service, mints the tokens and writes the Postman environment.
    /// Must run on a multi-threaded Tokio runtime.
    ///
    /// # Errors
    /// What went wrong and what to do, for people (Dovecot missing, not
    /// root, port taken, ...).
    pub async fn start(options: &Options) -> Result<Sandbox, String> {
        let dir = tempfile::Builder::new()
            .prefix("inboxlink-sandbox-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        if options.mail {
            check_mail_prerequisites()?;
        }

        let fake = FakeEntra::start().await;
        fake.register_app(TENANT_ID, CLIENT_ID, CLIENT_SECRET);
        fake.add_domain(TENANT_ID, TENANT_DOMAIN);

        let ca = TestCa::generate(&dir.path().join("ca"));
        let mail = if options.mail {
            let sink = SmtpSink::start();
            let introspection = fake.introspection_url();
            let dovecot =
                tokio::task::block_in_place(|| Dovecot::start(&introspection, &ca, &sink))
                    .map_err(|e| format!("Dovecot did not start: {e}"))?;
            for mailbox in MAILBOXES {
                dovecot.deliver(mailbox, MESSAGES_PER_MAILBOX);
            }
            Some(Mail {
                dovecot,
                _sink: sink,
            })
        } else {
            None
        };
        let (imap, smtp) = match &mail {
            Some(m) => (m.dovecot.imap_endpoint(), m.dovecot.submission_endpoint()),
            None => (NO_MAIL_ENDPOINT.to_owned(), NO_MAIL_ENDPOINT.to_owned()),
        };

        let receiver = Receiver::try_start_on(
            &format!("127.0.0.1:{}", options.receiver_port),
            options.print_deliveries,
        )
        .await
        .map_err(|e| {
            format!(
                "the webhook receiver did not start on 127.0.0.1:{}: {e} (pick another with --receiver-port)",
                options.receiver_port
            )
        })?;

        let (data_dir, data_dir_is_temp) = match &options.data_dir {
            Some(d) => (d.clone(), false),
            None => (dir.path().join("data"), true),
        };
        let mut return_urls: Vec<String> = DEFAULT_RETURN_URLS
            .iter()
            .map(|u| (*u).to_owned())
            .collect();
        return_urls.extend(options.return_urls.iter().cloned());
        let metrics_token = random_token();
        let mut vars = vec![
            ("INBOXLINK_BIND", format!("127.0.0.1:{}", options.port)),
            ("INBOXLINK_DATA_DIR", data_dir.display().to_string()),
            ("INBOXLINK_MS_AUTHORITY", fake.authority()),
            ("INBOXLINK_GRAPH_ENDPOINT", fake.graph_endpoint()),
            ("INBOXLINK_IMAP_ENDPOINT", imap),
            ("INBOXLINK_SMTP_ENDPOINT", smtp),
            (
                "INBOXLINK_EXTRA_ROOT_CA",
                ca.ca_file().display().to_string(),
            ),
            ("INBOXLINK_CHECK_TIMEOUT_SECONDS", "5".to_owned()),
            ("INBOXLINK_RETURN_URL_ALLOWLIST", return_urls.join(",")),
            ("INBOXLINK_METRICS_TOKEN", metrics_token.clone()),
            // Webhooks may go to the receiver (http://127.0.0.1:…).
            ("INBOXLINK_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            // The service accepts the tokens printed (up to --token-ttl).
            (
                "INBOXLINK_JWT_MAX_LIFETIME_SECONDS",
                options
                    .token_ttl
                    .as_secs()
                    .max(inboxlink::config::MAX_LIFETIME_SECONDS)
                    .to_string(),
            ),
        ];
        if mail.is_some() {
            // The bridge for legacy IMAP and SMTP clients, on free ports.
            vars.push(("INBOXLINK_BRIDGE_IMAP_BIND", "127.0.0.1:0".to_owned()));
            vars.push(("INBOXLINK_BRIDGE_SMTP_BIND", "127.0.0.1:0".to_owned()));
        }
        if let Some(filter) = options
            .log
            .clone()
            .or_else(|| std::env::var("INBOXLINK_LOG").ok())
        {
            vars.push(("INBOXLINK_LOG", filter));
        }
        if let Ok(format) = std::env::var("INBOXLINK_LOG_FORMAT") {
            vars.push(("INBOXLINK_LOG_FORMAT", format));
        }
        let settings = Settings::from_source(&Source::from_pairs(vars).map_err(|e| e.to_string())?)
            .map_err(|e| format!("configuration: {e}"))?;
        inboxlink::telemetry::init(&settings.log, std::io::stderr);

        let mint_for = |role: &str| {
            mint(
                &settings.jwt,
                &TokenRequest {
                    subject: format!("sandbox-{role}"),
                    org: ORG.to_owned(),
                    roles: vec![role.to_owned()],
                    ttl: options.token_ttl,
                },
            )
            .map_err(|e| format!("cannot mint a token: {e}"))
        };
        let tokens = Tokens {
            admin: mint_for("admin")?,
            operator: mint_for("operator")?,
            viewer: mint_for("viewer")?,
            service: mint_for("service")?,
        };

        let app = inboxlink::Application::build(settings)
            .await
            .map_err(|e| {
                let mut text = format!("the service did not start: {e:#}");
                if options.port != 0 {
                    text.push_str(&format!(
                        "\n(is something else on port {}? pick another with --port, or --port 0 for a free one)",
                        options.port
                    ));
                }
                text
            })?;
        let base_url = app.public_url().as_str().trim_end_matches('/').to_owned();
        let bridge = app.services().bridge.as_ref().clone();
        fake.add_redirect_uri(CLIENT_ID, &format!("{base_url}/oauth/callback"));
        let server = tokio::spawn(app.run_until_stopped());

        let env_file = options
            .env_file
            .clone()
            .unwrap_or_else(|| dir.path().join("sandbox.postman_environment.json"));
        let sandbox = Sandbox {
            base_url,
            data_dir,
            data_dir_is_temp,
            env_file,
            tokens,
            metrics_token,
            fake,
            mail,
            receiver,
            print_deliveries: options.print_deliveries,
            bridge,
            server: Some(server),
            dir,
        };
        sandbox.write_environment()?;
        Ok(sandbox)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The tokens, one per role, for the organisation [`ORG`].
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The token that opens `/metrics` (`INBOXLINK_METRICS_TOKEN`; not an API token).
    pub fn metrics_token(&self) -> &str {
        &self.metrics_token
    }

    /// The fake Entra ID (its authority is the service's `INBOXLINK_MS_AUTHORITY`).
    pub fn fake(&self) -> &FakeEntra {
        &self.fake
    }

    /// Where the Postman environment with the live values was written.
    pub fn env_file(&self) -> &Path {
        &self.env_file
    }

    /// The temp dir holding the test CA (and, by default, the data dir and the environment file).
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The webhook receiver (records every request; prints them with `--receiver`).
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// The receiver's URL that webhooks can point at.
    pub fn receiver_url(&self) -> String {
        self.receiver.url(RECEIVER_PATH)
    }

    /// Whether Dovecot runs.
    pub fn has_mail(&self) -> bool {
        self.mail.is_some()
    }

    /// The service's task; it ends when the server stops.
    pub fn take_server(&mut self) -> Option<JoinHandle<std::io::Result<()>>> {
        self.server.take()
    }

    /// The Postman environment with the live values (keys: [`ENVIRONMENT_KEYS`]).
    pub fn postman_environment(&self) -> Value {
        let t = &self.tokens;
        let receiver_url = self.receiver_url();
        let values: Vec<Value> = [
            ("baseUrl", self.base_url.as_str(), "default"),
            ("org", ORG, "default"),
            ("adminToken", t.admin.as_str(), "secret"),
            ("operatorToken", t.operator.as_str(), "secret"),
            ("viewerToken", t.viewer.as_str(), "secret"),
            ("serviceToken", t.service.as_str(), "secret"),
            ("metricsToken", self.metrics_token.as_str(), "secret"),
            ("tenantId", TENANT_ID, "default"),
            ("clientId", CLIENT_ID, "default"),
            ("clientSecret", CLIENT_SECRET, "secret"),
            ("mailbox", MAILBOXES[0], "default"),
            (
                "mailServers",
                if self.has_mail() { "dovecot" } else { "none" },
                "default",
            ),
            ("receiverUrl", receiver_url.as_str(), "default"),
        ]
        .into_iter()
        .map(|(key, value, kind)| json!({ "key": key, "value": value, "type": kind, "enabled": true }))
        .collect();
        json!({
            "id": "6d1f0a4e-2b7c-4e59-9a83-5c0d7e1f2a3b",
            "name": "Inboxlink sandbox (live)",
            "values": values,
            "_postman_variable_scope": "environment",
        })
    }

    fn write_environment(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.postman_environment())
            .map_err(|e| format!("cannot serialise the Postman environment: {e}"))?;
        if let Some(parent) = self.env_file.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // Written whole, then renamed: a script waiting for the file never reads half of it.
        let tmp = self.env_file.with_extension("json.partial");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &self.env_file))
            .map_err(|e| format!("cannot write {}: {e}", self.env_file.display()))
    }

    /// What the sandbox prints once it runs.
    pub fn banner(&self) -> String {
        let base = &self.base_url;
        let rule = "=".repeat(64);
        let mut s = String::new();
        let _ = writeln!(s, "\n{rule}");
        let _ = writeln!(s, "  SANDBOX — fake Microsoft sign-in, not for production");
        let _ = writeln!(s, "{rule}\n");
        let _ = writeln!(s, "Inboxlink API   {base}");
        let _ = writeln!(s, "  docs          {base}/docs/");
        let _ = writeln!(s, "  OpenAPI spec  {base}/openapi.json");
        let _ = writeln!(s, "  redirect URI  {base}/oauth/callback");
        let keep = if self.data_dir_is_temp {
            "fresh SQLite, removed on exit"
        } else {
            "kept; the fake sign-in is new on every start: sign mailboxes in again"
        };
        let _ = writeln!(s, "  data dir      {} ({keep})", self.data_dir.display());

        let _ = writeln!(
            s,
            "\nTokens for the organisation `{ORG}` (header `Authorization: Bearer <token>`):"
        );
        for (role, token) in self.tokens.by_role() {
            let _ = writeln!(s, "  {role:<9} {token}");
        }
        let _ = writeln!(s, "  in a shell: export ADMIN_TOKEN={}", self.tokens.admin);
        let _ = writeln!(
            s,
            "\nMetrics token (INBOXLINK_METRICS_TOKEN; opens {base}/metrics, which spans every organisation; not an API token):\n  {}\n  curl -s {base}/metrics -H \"Authorization: Bearer {}\"",
            self.metrics_token, self.metrics_token
        );

        let _ = writeln!(
            s,
            "\nFake Entra ID app registration ({}):",
            self.fake.authority()
        );
        let _ = writeln!(s, "  tenant_id      {TENANT_ID}  (or {TENANT_DOMAIN})");
        let _ = writeln!(s, "  client_id      {CLIENT_ID}");
        let _ = writeln!(s, "  client_secret  {CLIENT_SECRET}  (the secret Value)");
        let _ = writeln!(
            s,
            "  No app credential exists yet; create one with these values, e.g.:\n    curl -s {base}/app-credentials -H \"Authorization: Bearer $ADMIN_TOKEN\" \\\n      -H 'Content-Type: application/json' -d '{{\"name\":\"Sandbox app\",\"client_id\":\"{CLIENT_ID}\",\n      \"tenant_id\":\"{TENANT_ID}\",\"client_secret\":\"{CLIENT_SECRET}\"}}'"
        );

        let _ = writeln!(
            s,
            "\nMailboxes: any address signs in (the fake approves the login_hint at once), e.g."
        );
        for m in MAILBOXES {
            let _ = writeln!(s, "  {m}");
        }
        match &self.mail {
            Some(mail) => {
                let _ = writeln!(
                    s,
                    "  Dovecot holds {MESSAGES_PER_MAILBOX} messages in each of these INBOXes;\n  IMAP {} (TLS), SMTP {} (STARTTLS), test CA trusted by the service.",
                    mail.dovecot.imap_endpoint(),
                    mail.dovecot.submission_endpoint()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  --no-mail: no Dovecot, so connection checks fail at imap_connect (unreachable).\n  For real IMAP/SMTP: sudo scripts/install-test-deps.sh, then run as root without --no-mail."
                );
            }
        }
        let _ = writeln!(
            s,
            "\nSign-in: POST {base}/mailboxes/{{id}}/refresh, open its authorization_url in a browser\n  (or follow the redirects): it ends on {base}/oauth/callback saying the mailbox is connected."
        );
        let receiver = self.receiver_url();
        let printing = if self.print_deliveries {
            "prints each delivery here"
        } else {
            "records silently; --receiver prints each delivery"
        };
        let _ = writeln!(
            s,
            "\nWebhooks: a receiver runs at {receiver} (answers 200; {printing}).\n  \
             The sandbox allows http:// and local webhook URLs (INBOXLINK_WEBHOOK_ALLOW_PRIVATE=true).\n  \
             Point a webhook at it (the answer holds its secret, whsec_…, shown once):\n    \
             curl -s {base}/webhooks -H \"Authorization: Bearer $ADMIN_TOKEN\" \\\n      \
             -H 'Content-Type: application/json' -d '{{\"url\":\"{receiver}\"}}'\n  \
             Send it a test event, then see the attempts:\n    \
             curl -s -X POST {base}/webhooks/<id>/test -H \"Authorization: Bearer $ADMIN_TOKEN\"\n    \
             curl -s {base}/webhooks/<id>/deliveries -H \"Authorization: Bearer $ADMIN_TOKEN\"\n  \
             A receiver that checks the signatures: point a webhook at http://127.0.0.1:9000/ and run\n    \
             WEBHOOK_SECRET=<secret> cargo run -p inboxlink-sdk --example webhook_receiver -- 127.0.0.1:9000"
        );
        if let (Some(imap), Some(smtp)) = (self.bridge.imap, self.bridge.smtp) {
            let fingerprint = self.bridge.fingerprint.as_deref().unwrap_or_default();
            let m = MAILBOXES[0];
            let _ = writeln!(
                s,
                "\nBridge for legacy IMAP and SMTP clients (user name and password instead of OAuth):\n  \
                 IMAP {imap} (TLS), SMTP {smtp} (STARTTLS); a self-signed certificate,\n  \
                 SHA-256 {fingerprint} (GET {base}/bridge)\n  \
                 Once {m} is signed in, create a bridge password (shown once):\n    \
                 curl -s {base}/mailboxes/<id>/bridge-passwords -H \"Authorization: Bearer $ADMIN_TOKEN\" \\\n      \
                 -H 'Content-Type: application/json' -d '{{\"name\":\"Mail client\"}}'\n  \
                 then log in with its username and password, e.g.:\n    \
                 curl --insecure 'imaps://{imap}/INBOX;MAILINDEX=1' -u '{m}:<password>'\n    \
                 curl --insecure --ssl-reqd smtp://{smtp} -u '{m}:<password>' --mail-from {m} --mail-rcpt {m} -T message.eml\n  \
                 In a mail client: the server 127.0.0.1, those ports, SSL/TLS (IMAP) and STARTTLS (SMTP),\n  \
                 normal password; accept the certificate after comparing its fingerprint."
            );
        }
        let _ = writeln!(
            s,
            "\nPostman environment with these values: {}\n  Postman: import postman/inboxlink.postman_collection.json and this file.\n  newman:  scripts/newman.sh (starts its own sandbox)",
            self.env_file.display()
        );
        let _ = writeln!(s, "\nCtrl-C stops the sandbox.");
        s
    }

    /// Stops Dovecot and removes the temp dir (the service stops with the process).
    pub fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(mut mail) = self.mail.take() {
            mail.dovecot.stop();
        }
    }
}

/// 32 random bytes, base64url: a metrics token for this run.
fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Dovecot must be installed and we must be root; say how to get there.
fn check_mail_prerequisites() -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join("dovecot").is_file());
    if !found {
        return Err(
            "Dovecot is not installed; the sandbox runs a private one for IMAP and SMTP.\n  \
             Install it with: sudo scripts/install-test-deps.sh (dovecot-imapd, dovecot-submissiond)\n  \
             or start without mail servers: scripts/sandbox.sh --no-mail"
                .to_owned(),
        );
    }
    if !is_root() {
        return Err(
            "the private Dovecot must be started as root (it switches to the users dovecot, \
             dovenull and nobody).\n  Run it as root (a root shell), or start without \
             mail servers: scripts/sandbox.sh --no-mail"
                .to_owned(),
        );
    }
    Ok(())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
