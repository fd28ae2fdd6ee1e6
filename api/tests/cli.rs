//! The `inboxlink` binary as a user runs it: first run with nothing
//! configured, token minting, configuration errors, the spec command.

// The service's house rules (api/clippy.toml) bind the service, not this test
// of it from outside: it passes PATH on, calls with a plain HTTP client and
// waits for the child process.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The binary with a clean environment (no INBOXLINK_* from the caller) in `dir`.
fn inboxlink(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inboxlink"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

/// Starts `serve` from `cmd` on port 0 (instead of 8080, so tests can run
/// side by side); the lines it writes to stderr arrive on the receiver.
fn serve(cmd: &mut Command) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut server = cmd
        .env("INBOXLINK_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (server, rx)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn first_run_just_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nothing is configured but the port.
    let (mut server, rx) = serve(&mut inboxlink(dir.path()));
    let mut banner = Vec::new();
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the start-up message");
        banner.push(line.clone());
        if let Some(rest) = line.strip_prefix("Inboxlink is listening on ") {
            break rest.trim().to_owned();
        }
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        banner.push(line);
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains("/docs/"),
        "tells where the docs are: {banner}"
    );
    assert!(
        banner.contains("inboxlink token --org"),
        "tells how to mint an admin token: {banner}"
    );

    let data = dir.path().join("inboxlink-data");
    for file in ["master.key", "jwt-hs256.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} is private");
    }
    assert!(data.join("inboxlink.sqlite3").exists());
    let key_before = std::fs::read(data.join("master.key")).expect("key");

    let out = inboxlink(dir.path())
        .args(["token", "--org", "acme", "--role", "admin"])
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(token.lines().count(), 1, "the token alone");
    assert_eq!(token.trim().split('.').count(), 3, "a JWT");
    assert_eq!(
        std::fs::read(data.join("master.key")).expect("key"),
        key_before,
        "never overwritten"
    );

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/app-credentials"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({
            "name": "E-filing office",
            "client_id": "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
            "tenant_id": "contoso.onmicrosoft.com",
            "client_secret": "Abc8Q~first.run.secret.value_1234",
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let body = created.text().await.expect("body");
    assert!(!body.contains("Abc8Q~first.run.secret.value_1234"));
    let cred: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mailbox = http
        .post(format!("{base}/mailboxes"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({ "email": "podatelna@contoso.cz", "app_credential_id": cred["id"] }))
        .send()
        .await
        .expect("create");
    assert_eq!(mailbox.status(), 201);
    let mailbox: serde_json::Value = mailbox.json().await.expect("json");
    assert_eq!(mailbox["status"], "inactive");

    server.kill().expect("stop");
    let _ = server.wait();
    let db = std::fs::read(data.join("inboxlink.sqlite3")).unwrap_or_default();
    let wal = std::fs::read(data.join("inboxlink.sqlite3-wal")).unwrap_or_default();
    let stored = String::from_utf8_lossy(&[db, wal].concat()).into_owned();
    assert!(stored.contains("podatelna@contoso.cz"), "the data is there");
    assert!(
        !stored.contains("Abc8Q~first.run.secret.value_1234"),
        "but not the plaintext secret"
    );
}

#[test]
fn bad_configuration_names_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, value) in [
        ("INBOXLINK_BIND", "localhost"),
        ("INBOXLINK_DATABSE_URL", "sqlite://x"),
        ("INBOXLINK_MASTER_KEY", "not-base64!"),
        ("INBOXLINK_JWT_HS256_SECRET", "too-short"),
    ] {
        let out = inboxlink(dir.path())
            .env(var, value)
            .arg("migrate")
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "names {var}: {stderr}");
        assert!(
            !stderr.contains(value) || var == "INBOXLINK_BIND",
            "secrets are not echoed: {stderr}"
        );
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_without_keys_generates_nothing_and_reports_the_real_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = inboxlink(dir.path())
        .env(
            "INBOXLINK_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/inboxlink",
        )
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INBOXLINK_MASTER_KEY"));
    assert!(
        !dir.path().join("inboxlink-data").exists(),
        "nothing generated"
    );

    let out = inboxlink(dir.path())
        .env(
            "INBOXLINK_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/inboxlink",
        )
        .env(
            "INBOXLINK_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env(
            "INBOXLINK_JWT_HS256_SECRET",
            "0123456789abcdef0123456789abcdef",
        )
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to PostgreSQL") && stderr.contains("127.0.0.1"),
        "the driver's own error: {stderr}"
    );
}

/// The default build (no cargo feature `postgres`, what `cargo run -p
/// inboxlink` builds) serves SQLite only: it links no libpq, and a PostgreSQL
/// URL stops start-up with how to build with PostgreSQL. `cargo test
/// --workspace` enables the feature (the test crate needs it), so
/// scripts/test.sh runs this crate's tests once more with the default features.
#[cfg(not(feature = "postgres"))]
#[test]
fn default_build_has_no_postgres_and_says_how_to_get_it() {
    let binary = env!("CARGO_BIN_EXE_inboxlink");
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(ldd.status.success(), "{libs}");
    assert!(!libs.contains("libpq"), "links no libpq: {libs}");

    let dir = tempfile::tempdir().expect("temp dir");
    let out = inboxlink(dir.path())
        .env(
            "INBOXLINK_DATABASE_URL",
            "postgres://inboxlink:pg-pass-9f2c@127.0.0.1:1/inboxlink",
        )
        .output()
        .expect("runs");
    assert!(!out.status.success(), "start-up stops");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("INBOXLINK_DATABASE_URL: "),
        "names the variable: {stderr}"
    );
    assert!(
        stderr.contains("cargo build --release -p inboxlink --features postgres")
            && stderr.contains("libpq-dev"),
        "says how to build with PostgreSQL: {stderr}"
    );
    assert!(!stderr.contains("pg-pass-9f2c"), "no password: {stderr}");
    assert!(
        !dir.path().join("inboxlink-data").exists(),
        "nothing generated"
    );
}

#[test]
fn openapi_command_writes_the_committed_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = inboxlink(dir.path())
        .args(["openapi", "--out", "spec"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi");
    for file in ["inboxlink.json", "inboxlink-3.0.json"] {
        assert_eq!(
            std::fs::read_to_string(dir.path().join("spec").join(file)).expect("written"),
            std::fs::read_to_string(root.join(file)).expect("committed"),
            "{file}"
        );
    }
}

#[test]
fn sigterm_stops_serving_and_doctor_and_rekey_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, rx) = serve(&mut inboxlink(dir.path()));
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the start-up message");
        if line.starts_with("Inboxlink is listening on ") {
            break;
        }
    }
    // Let the server finish starting its workers before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stops soon after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean stop: {status:?}");
    let log: Vec<String> = rx.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("inboxlink stopped")),
        "logs the stop: {log:#?}"
    );

    // The database it left behind is healthy.
    let out = inboxlink(dir.path())
        .arg("doctor")
        .output()
        .expect("doctor");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("OK   migrations: up to date"), "{report}");
    assert!(
        report.contains("OK   app_credentials.client_secret: 0 values decrypt"),
        "{report}"
    );
    assert!(report.trim_end().ends_with("0 FAIL"), "{report}");

    let out = inboxlink(dir.path()).arg("rekey").output().expect("rekey");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("rekey: 0 re-encrypted"), "{report}");

    // A database that was never migrated: doctor says so and exits with 1.
    let fresh = tempfile::tempdir().expect("temp dir");
    let out = inboxlink(fresh.path())
        .arg("doctor")
        .output()
        .expect("doctor");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL migrations: ") && report.contains(" pending ("),
        "{report}"
    );
}

#[test]
fn readable_secrets_are_named_by_doctor_and_at_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("inboxlink-data");
    let secret_file = dir.path().join("jwt secret");
    let secret = "file-secret-0123456789abcdef0123456789";
    std::fs::write(&secret_file, secret).expect("write");
    chmod(&secret_file, 0o600);
    let run = |args: &[&str]| {
        inboxlink(dir.path())
            .env("INBOXLINK_JWT_HS256_SECRET_FILE", &secret_file)
            .args(args)
            .output()
            .expect("runs")
    };
    assert!(run(&["migrate"]).status.success());

    // As generated (the data dir and master.key), and a secret file of mode 0600: private.
    let out = run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("OK   file modes: the data dir and secret files (3 checked) are private"),
        "{report}"
    );
    assert!(!report.lines().any(|l| l.starts_with("WARN")), "{report}");

    chmod(&data, 0o750);
    chmod(&data.join("master.key"), 0o640);
    chmod(&secret_file, 0o604);
    let master_key = std::fs::read_to_string(data.join("master.key")).expect("key");
    let abs = |p: &Path| std::path::absolute(p).expect("absolute");
    let expected = [
        format!(
            "data dir {} has mode 0750: users other than its owner have access; run `chmod go-rwx {}`",
            abs(&data).display(),
            abs(&data).display()
        ),
        format!(
            "generated key {} has mode 0640: users other than its owner have access; run `chmod go-rwx {}`",
            abs(&data.join("master.key")).display(),
            abs(&data.join("master.key")).display()
        ),
        format!(
            "INBOXLINK_JWT_HS256_SECRET_FILE {} has mode 0604: users other than its owner have access; run `chmod go-rwx '{}'`",
            abs(&secret_file).display(),
            abs(&secret_file).display()
        ),
    ];
    let out = run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning, not a failure: {report}");
    for line in &expected {
        assert!(
            report.contains(&format!("WARN file modes: {line}\n")),
            "{line}\n{report}"
        );
    }
    assert_eq!(report.matches("WARN file modes:").count(), 3, "{report}");
    assert!(
        !report.contains(master_key.trim()) && !report.contains(secret),
        "{report}"
    );

    // serve warns the same at start-up.
    let (mut server, rx) =
        serve(inboxlink(dir.path()).env("INBOXLINK_JWT_HS256_SECRET_FILE", &secret_file));
    let mut log = Vec::new();
    for line in rx.iter() {
        let started = line.starts_with("Inboxlink is listening on ");
        log.push(line);
        if started {
            break;
        }
    }
    server.kill().expect("stop");
    let _ = server.wait();
    let log = log.join("\n");
    for line in &expected {
        assert!(
            log.lines()
                .any(|l| l.contains(" WARN") && l.contains(line.as_str())),
            "{line}\n{log}"
        );
    }
    assert!(
        !log.contains(master_key.trim()) && !log.contains(secret),
        "{log}"
    );
}
