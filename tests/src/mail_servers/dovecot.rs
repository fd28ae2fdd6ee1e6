//! A private Dovecot (IMAP + SMTP submission) for tests.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::{LOCAL_IP, SmtpSink, TestCa};

/// How long [`Dovecot::start`] waits for both ports to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Dovecot::stop`] waits for the master to exit after `SIGTERM`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with fresh ports when a port was taken between choosing and binding.
const START_ATTEMPTS: usize = 3;
/// Where `dovecot` is looked for besides `PATH` (a non-root `PATH` often lacks sbin).
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Counter for unique maildir file names within the process.
static DELIVERED: AtomicUsize = AtomicUsize::new(0);

/// The `dovecot` binary.
///
/// Looks in `PATH`, then `/usr/sbin`, `/usr/local/sbin`, `/sbin`.
///
/// # Panics
/// If there is none: the mail-server tests are never skipped silently. With
/// `CI=true` the message says that CI's setup is broken; elsewhere it says
/// to run `scripts/install-test-deps.sh`.
pub fn dovecot_binary() -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = path_dirs
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join("dovecot"))
        .find(|p| {
            fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    if let Some(path) = found {
        return path;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if in_ci {
        panic!(
            "CI=true but the `dovecot` binary is missing (looked in PATH and {SBIN_DIRS:?}): \
             the mail-server tests need it. scripts/install-test-deps.sh must install \
             dovecot-imapd and dovecot-submissiond before `cargo test`."
        );
    }
    panic!(
        "the mail-server tests need Dovecot, but `dovecot` is not installed (looked in PATH and \
         {SBIN_DIRS:?}). Run `sudo scripts/install-test-deps.sh` (Debian: installs dovecot-imapd \
         and dovecot-submissiond and stops the system Dovecot), then run the tests as root."
    );
}

/// A private Dovecot started from its own configuration in a temporary
/// directory, listening on `127.0.0.1` only:
///
/// - IMAP with implicit TLS on a free high port ([`Dovecot::imap_endpoint`]);
///   the plain/STARTTLS IMAP listener is disabled;
/// - SMTP submission with STARTTLS on a free high port
///   ([`Dovecot::submission_endpoint`]), relaying accepted mail to an [`SmtpSink`].
///
/// Both accept only SASL `XOAUTH2` and `OAUTHBEARER`; bearer tokens are
/// checked by POSTing `token=...` to the introspection URL, which must answer
/// `200 {"active":true,"email":"<user>"}` (the `email` must equal the SASL
/// user) or `200 {"active":false}`. Failed logins are not delayed. TLS uses
/// the [`TestCa`]'s server certificate (TLS 1.2 minimum).
///
/// Mail lives in `<tmp>/mail/<user>/Maildir`, owned by `nobody`. Dovecot runs
/// as root with its package users (`dovecot`, `dovenull`), so the tests must
/// run as root. Dropping the value stops Dovecot and removes the directory.
pub struct Dovecot {
    dir: TempDir,
    imap_port: u16,
    submission_port: u16,
    mail_uid: u32,
    mail_gid: u32,
    /// Open IMAP sessions it is sized for (0: Dovecot's defaults).
    sessions: usize,
    child: Option<Child>,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("dir", &self.dir.path())
            .field("imap_port", &self.imap_port)
            .field("submission_port", &self.submission_port)
            .finish_non_exhaustive()
    }
}

/// Users and ids Dovecot runs with.
struct Accounts {
    mail_uid: u32,
    mail_gid: u32,
    login_user: String,
    internal_user: String,
}

impl Dovecot {
    /// Writes the configuration, starts `dovecot -F -c <config>` and blocks
    /// until both ports accept TCP connections (at most ~10 s; retried with
    /// new ports if a port was taken meanwhile).
    ///
    /// # Errors
    /// If not running as root, a Dovecot user is missing, or Dovecot does not
    /// come up; the error includes the end of Dovecot's log.
    ///
    /// # Panics
    /// If Dovecot is not installed (see [`dovecot_binary`]).
    pub fn start(introspection_url: &str, ca: &TestCa, relay: &SmtpSink) -> io::Result<Dovecot> {
        Self::start_with_sessions(introspection_url, ca, relay, 0)
    }

    /// [`Dovecot::start`] sized for `sessions` open IMAP sessions at once,
    /// all of one user from one address if need be (the benchmark's idle
    /// sessions): the login processes each serve many clients (Dovecot's
    /// high-performance mode) and the per-user limit and the process and
    /// client limits are raised. `0` keeps Dovecot's defaults.
    ///
    /// # Errors
    /// As [`Dovecot::start`].
    ///
    /// # Panics
    /// If Dovecot is not installed (see [`dovecot_binary`]).
    pub fn start_with_sessions(
        introspection_url: &str,
        ca: &TestCa,
        relay: &SmtpSink,
        sessions: usize,
    ) -> io::Result<Dovecot> {
        let binary = dovecot_binary();
        if fs::metadata("/proc/self")?.uid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the private Dovecot must be started as root (as in CI): it switches to the \
                 users `dovecot`, `dovenull` and `nobody`",
            ));
        }
        let accounts = accounts()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("inboxlink-dovecot-")
                .tempdir()?;
            let imap_port = free_port()?;
            let submission_port = free_port()?;
            let mut dovecot = Dovecot {
                dir,
                imap_port,
                submission_port,
                mail_uid: accounts.mail_uid,
                mail_gid: accounts.mail_gid,
                sessions,
                child: None,
            };
            dovecot.prepare(introspection_url, ca, relay, &accounts)?;
            match dovecot.launch(&binary) {
                Ok(()) => return Ok(dovecot),
                Err(e) => {
                    let retry = e.kind() == io::ErrorKind::AddrInUse;
                    last_error = Some(e);
                    dovecot.stop();
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("Dovecot did not start")))
    }

    /// `127.0.0.1:PORT` of IMAP with implicit TLS: the service's
    /// `INBOXLINK_IMAP_ENDPOINT`. The certificate is valid for `127.0.0.1`
    /// and `localhost`.
    pub fn imap_endpoint(&self) -> String {
        format!("{LOCAL_IP}:{}", self.imap_port)
    }

    /// `127.0.0.1:PORT` of SMTP submission with STARTTLS: the service's
    /// `INBOXLINK_SMTP_ENDPOINT`.
    pub fn submission_endpoint(&self) -> String {
        format!("{LOCAL_IP}:{}", self.submission_port)
    }

    /// IMAP (implicit TLS) port on `127.0.0.1`.
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// Submission (STARTTLS) port on `127.0.0.1`.
    pub fn submission_port(&self) -> u16 {
        self.submission_port
    }

    /// The temporary directory holding config, runtime files, log and mail.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the master process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Dovecot's log so far (logins, failures, relay errors), for assertions
    /// and failure messages.
    pub fn log(&self) -> String {
        let mut text = fs::read_to_string(self.path("dovecot.log")).unwrap_or_default();
        let stderr = fs::read_to_string(self.path("stderr.log")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            text.push_str("--- stderr ---\n");
            text.push_str(&stderr);
        }
        text
    }

    /// Puts `count` new messages into `mailbox`'s INBOX (maildir `new/`,
    /// files owned by the mail user). `mailbox` is the SASL user; Dovecot
    /// lowercases it, so this does too. Subjects are `Test message 1..=count`
    /// (numbered per call).
    ///
    /// # Panics
    /// If the maildir cannot be written.
    pub fn deliver(&self, mailbox: &str, count: usize) {
        for i in 1..=count {
            let n = DELIVERED.load(Ordering::SeqCst);
            let message = format!(
                "From: Test Sender <sender@example.test>\r\n\
                 To: <{mailbox}>\r\n\
                 Subject: Test message {i}\r\n\
                 Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
                 Message-ID: <{n}.{}@inboxlink.test>\r\n\
                 MIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=us-ascii\r\n\
                 \r\n\
                 Test message {i} for {mailbox}.\r\n",
                uuid::Uuid::new_v4().simple()
            );
            self.deliver_raw(mailbox, message.as_bytes());
        }
    }

    /// Puts one message, exactly these bytes (CRLF line ends, so that IMAP
    /// serves them unchanged), into `mailbox`'s INBOX, as [`Self::deliver`] does.
    ///
    /// # Panics
    /// If the maildir cannot be written.
    pub fn deliver_raw(&self, mailbox: &str, message: &[u8]) {
        let user = mailbox.to_lowercase();
        assert!(
            !user.is_empty() && !user.contains('/') && user != "." && user != "..",
            "Dovecot::deliver: not a usable mailbox name: {mailbox:?}"
        );
        let home = self.path("mail").join(&user);
        let maildir = home.join("Maildir");
        for d in [
            &home,
            &maildir,
            &maildir.join("cur"),
            &maildir.join("new"),
            &maildir.join("tmp"),
        ] {
            fs::create_dir_all(d).expect("Dovecot::deliver: create the maildir");
            self.own(d);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = DELIVERED.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "{}.M{}P{}Q{n}.inboxlink-test",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id()
        );
        // Write in tmp/, then rename into new/: Dovecot never sees half a file.
        let tmp = maildir.join("tmp").join(&name);
        fs::write(&tmp, message).expect("Dovecot::deliver: write a message");
        self.own(&tmp);
        fs::rename(&tmp, maildir.join("new").join(&name))
            .expect("Dovecot::deliver: move the message into new/");
    }

    /// Stops Dovecot: `SIGTERM` to the master (its pid is in
    /// `base_dir/master.pid`), then waits until the pid file is gone and the
    /// master exited (`SIGKILL` after 10 s). Idempotent; also done on drop.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid_file = self.path("run").join("master.pid");
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or_else(|| child.id());
        if matches!(child.try_wait(), Ok(None)) {
            let termed = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !termed {
                drop(child.kill());
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let exited = !matches!(child.try_wait(), Ok(None));
            if exited && !pid_file.exists() {
                break;
            }
            if Instant::now() >= deadline {
                drop(child.kill());
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        drop(child.wait());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn own(&self, path: &Path) {
        chown(path, Some(self.mail_uid), Some(self.mail_gid))
            .expect("Dovecot: chown to the mail user");
    }

    /// Writes certificate, key, configuration and the directory layout.
    fn prepare(
        &self,
        introspection_url: &str,
        ca: &TestCa,
        relay: &SmtpSink,
        accounts: &Accounts,
    ) -> io::Result<()> {
        let root = self.dir.path();
        // Dovecot's users must traverse the directory (tempdirs are 0700).
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
        for d in ["run", "state", "mail"] {
            fs::create_dir(root.join(d))?;
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755))?;
        }
        chown(root.join("mail"), Some(self.mail_uid), Some(self.mail_gid))?;

        fs::write(root.join("cert.pem"), &ca.cert_pem)?;
        fs::write(root.join("key.pem"), &ca.key_pem)?;
        fs::set_permissions(root.join("key.pem"), fs::Permissions::from_mode(0o600))?;

        let oauth2 = format!(
            "introspection_mode = post\n\
             introspection_url = {introspection_url}\n\
             username_attribute = email\n\
             active_attribute = active\n\
             active_value = true\n\
             timeout_msecs = 5000\n"
        );
        fs::write(root.join("oauth2.conf"), oauth2)?;
        fs::set_permissions(root.join("oauth2.conf"), fs::Permissions::from_mode(0o644))?;

        let config = config_text(&ConfigParams {
            root,
            imap_port: self.imap_port,
            submission_port: self.submission_port,
            relay_port: relay.port(),
            accounts,
            sessions: self.sessions,
        });
        fs::write(root.join("dovecot.conf"), config)?;
        Ok(())
    }

    /// Starts the master in the foreground (as our child) and waits for the ports.
    fn launch(&mut self, binary: &Path) -> io::Result<()> {
        let stderr = fs::File::create(self.path("stderr.log"))?;
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let ports = [self.imap_port, self.submission_port];
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = self.log();
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!(
                        "Dovecot exited during start-up ({status}); log:\n{}",
                        tail(&log)
                    ),
                ));
            }
            if ports.iter().all(|p| accepts(*p)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "Dovecot did not accept connections on ports {ports:?} within {START_TIMEOUT:?}; log:\n{}",
                        tail(&self.log())
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

struct ConfigParams<'a> {
    root: &'a Path,
    imap_port: u16,
    submission_port: u16,
    relay_port: u16,
    accounts: &'a Accounts,
    sessions: usize,
}

/// Settings for `sessions` open IMAP sessions (nothing for 0): appended to
/// the configuration, and added to the `imap-login` service.
fn sized_for(sessions: usize) -> (String, String) {
    if sessions == 0 {
        return (String::new(), String::new());
    }
    let clients = sessions * 2 + 100;
    let global = format!(
        "\ndefault_client_limit = {clients}\n\
         protocol imap {{\n  mail_max_userip_connections = {clients}\n}}\n\
         service imap {{\n  process_limit = {clients}\n}}\n"
    );
    let login =
        format!("  service_count = 0\n  process_min_avail = 2\n  client_limit = {clients}\n");
    (global, login)
}

fn config_text(p: &ConfigParams<'_>) -> String {
    let root = p.root.display();
    let instance = p
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "inboxlink-dovecot".to_owned());
    let (sized, login_sized) = sized_for(p.sessions);
    format!(
        r#"# Private Dovecot for Inboxlink's tests (generated by inboxlink_tests::mail_servers).
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {root}/dovecot.log
listen = {LOCAL_IP}
protocols = imap submission
hostname = localhost
default_login_user = {login}
default_internal_user = {internal}

ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
ssl_min_protocol = TLSv1.2

auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
auth_verbose = yes
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
}}

submission_relay_host = {LOCAL_IP}
submission_relay_port = {relay_port}
submission_relay_ssl = no

# The bridge's tests open many sessions of one user from 127.0.0.1 at once
# (default: 10 per user and address).
protocol imap {{
  mail_max_userip_connections = 100
}}

# Failed logins must not slow down the next ones (default penalty: up to 15 s).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{login_sized}  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {imap_port}
    ssl = yes
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = {submission_port}
  }}
}}
{sized}"#,
        login = p.accounts.login_user,
        internal = p.accounts.internal_user,
        uid = p.accounts.mail_uid,
        gid = p.accounts.mail_gid,
        relay_port = p.relay_port,
        imap_port = p.imap_port,
        submission_port = p.submission_port,
    )
}

/// The last lines of a log, for error messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((LOCAL_IP, 0))?.local_addr()?.port())
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// `name:x:uid:gid:...` lines of `/etc/passwd` or `/etc/group`: the id in `column`.
fn lookup_id(file: &str, name: &str, column: usize) -> Option<u32> {
    fs::read_to_string(file).ok()?.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name))
            .then(|| fields.get(column)?.parse().ok())
            .flatten()
    })
}

fn accounts() -> io::Result<Accounts> {
    let missing = |what: &str| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{what} is missing; the Dovecot package creates it: run scripts/install-test-deps.sh"
            ),
        )
    };
    let mail_uid =
        lookup_id("/etc/passwd", "nobody", 2).ok_or_else(|| missing("the user `nobody`"))?;
    let mail_gid = lookup_id("/etc/group", "nogroup", 2)
        .or_else(|| lookup_id("/etc/group", "nobody", 2))
        .ok_or_else(|| missing("the group `nogroup`"))?;
    for user in ["dovecot", "dovenull"] {
        if lookup_id("/etc/passwd", user, 2).is_none() {
            return Err(missing(&format!("the user `{user}`")));
        }
    }
    Ok(Accounts {
        mail_uid,
        mail_gid,
        login_user: "dovenull".to_owned(),
        internal_user: "dovecot".to_owned(),
    })
}
