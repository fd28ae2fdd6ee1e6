//! Clients that go away in the middle of a command leave nothing behind in
//! the bridge (`bridge_disconnect.py`, raw TLS sockets and smtplib, against
//! the private Dovecot), after a warm-up round: an IMAP client hangs up
//! half-way through a LOGIN literal before a login (1,000 times) and
//! half-way through an APPEND literal after one (500), and an SMTP client
//! half-way through a message after DATA (500). After each kind every
//! session has ended (none open, each counted as ended), no connection is
//! left to the bridge, to Dovecot or to its relay, and the process has no
//! more file descriptors and no more resident memory than after the
//! warm-up (within a slack).
//!
//! The service runs inside the test process, so its descriptors and memory
//! are the process's; other tests of the binary run beside this one, hence
//! the slack. It runs on SQLite only: the store plays no part in a session
//! once its password was checked.

use std::time::Duration;

use serde_json::Value;

use crate::bridge_imap::{bridge_rig, listener, python_client, ready};
use crate::bridge_smtp::ports;
use crate::helpers::{MAILBOX, TestApp};

/// How many clients hang up at once.
const AT_ONCE: usize = 8;
/// Descriptors the process may have gained over the sessions: other
/// tests open and close theirs meanwhile; one leaked session holds two.
const FD_SLACK: usize = 100;
/// Resident memory the process may have gained (other tests allocate too).
const RSS_SLACK_KB: u64 = 50 * 1024;

/// The ways to hang up: the script's mode, the protocol the bridge counts
/// it under, and how many times after the warm-up. A login costs an
/// Argon2id check and an upstream login, hence fewer of those.
const CUTS: [(&str, &str, usize); 3] = [
    ("imap_login_literal", "imap", 1000),
    ("imap_append", "imap", 500),
    ("smtp_data", "smtp", 500),
];
/// Hang-ups of each kind in the warm-up.
const WARM_UP: usize = 50;

/// Runs `count` clients of `mode`; how many reached the point where they hang up.
async fn hang_up(mode: &str, port: u16, password: &str, count: usize) -> Value {
    let args = [
        mode,
        &port.to_string(),
        MAILBOX,
        password,
        MAILBOX,
        "spisovna@contoso.cz",
        &count.to_string(),
        &AT_ONCE.to_string(),
    ];
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    python_client("bridge_disconnect.py", args).await
}

/// The process's open file descriptors and resident memory (kB).
fn footprint() -> (usize, u64) {
    let fds = std::fs::read_dir("/proc/self/fd").expect("/proc").count();
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    (fds, rss)
}

/// TCP connections on this machine with an end at one of `ports`, in any
/// state but LISTEN and TIME_WAIT (a closed connection's last state, which
/// holds no descriptor): `local:port -> remote:port state` each.
fn connections(ports: &[u16]) -> Vec<String> {
    const LISTEN: &str = "0A";
    const TIME_WAIT: &str = "06";
    let port_of = |address: &str| {
        let hex = address.rsplit_once(':').map_or("", |(_, p)| p);
        u16::from_str_radix(hex, 16).unwrap_or(0)
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|f| f.len() > 3 && f[3] != LISTEN && f[3] != TIME_WAIT)
        .filter(|f| ports.contains(&port_of(&f[1])) || ports.contains(&port_of(&f[2])))
        .map(|f| format!("{} -> {} state {}", port_of(&f[1]), port_of(&f[2]), f[3]))
        .collect()
}

/// The sum of a counter over its label sets that contain `labels`.
fn total(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Waits (at most 30 s) until no session is open and no connection is left
/// at `ports`, then checks that `started` sessions of each protocol were
/// counted as ended.
async fn settled(app: &TestApp, ports: &[u16], started: &[(&str, usize)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = crate::operations::scrape(app).await;
        let active = |protocol: &str| {
            let series = format!(r#"inboxlink_bridge_sessions_active{{protocol="{protocol}"}}"#);
            crate::operations::value(&metrics, &series)
        };
        let open = (active("imap"), active("smtp"));
        let left = connections(ports);
        if open == (0.0, 0.0) && left.is_empty() {
            for (protocol, count) in started {
                let label = format!(r#"protocol="{protocol}""#);
                let ended = total(&metrics, "inboxlink_bridge_sessions_total", &label);
                assert_eq!(ended, *count as f64, "{protocol}: every session ended");
            }
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions open (imap, smtp): {open:?}; connections left: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_mid_command_leave_nothing_behind() {
    let rig = bridge_rig(TestApp::new(), |s| {
        s.bridge.smtp_bind = Some("127.0.0.1:0".parse().expect("address"));
        s.bridge.smtps_bind = Some("127.0.0.1:0".parse().expect("address"));
        s.bridge.sessions_per_mailbox = 100;
    })
    .await;
    let password = ready(&rig).await;
    let (imap, _) = listener(&rig.app).await;
    let (smtp, _) = ports(&rig.app).await;
    let watched = [
        imap,
        smtp,
        rig.dovecot.imap_port(),
        rig.dovecot.submission_port(),
        rig.sink.port(),
    ];
    let mut started = [("imap", 0), ("smtp", 0)];
    let mut round = async |mode: &str, protocol: &str, count: usize| {
        let port = if protocol == "imap" { imap } else { smtp };
        let got = hang_up(mode, port, &password, count).await;
        assert_eq!(got["reached"], count, "{mode}: {got}");
        let slot = started.iter_mut().find(|(p, _)| *p == protocol);
        slot.expect("a protocol").1 += count;
        settled(&rig.app, &watched, &started).await;
    };
    // The warm-up: pools, caches and the allocator's arenas in place.
    for (mode, protocol, _) in CUTS {
        round(mode, protocol, WARM_UP).await;
    }
    let (fds, _) = footprint();
    for (mode, protocol, times) in CUTS {
        let (_, rss) = footprint();
        round(mode, protocol, times).await;
        let (fds_after, rss_after) = footprint();
        assert!(
            fds_after <= fds + FD_SLACK,
            "file descriptors: {fds} after the warm-up, {fds_after} after {mode}"
        );
        assert!(
            rss_after <= rss + RSS_SLACK_KB,
            "resident memory: {rss} kB before, {rss_after} kB after {times} {mode}"
        );
    }
}
