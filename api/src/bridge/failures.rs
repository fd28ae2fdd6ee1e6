//! Failed bridge logins, per user name and per source address (this
//! instance's memory): past a few failures a key is refused for a time that
//! doubles with every further failure (1 s, 2 s, 4 s, … at most 15 minutes),
//! without a password being checked. A successful login clears its user
//! name's count; a key unused for longer than its time and 15 minutes more
//! is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one user name before it is refused for a time.
pub const USER_FAILURES: u32 = 5;
/// Failures from one address before it is refused for a time (several
/// clients may share an address).
pub const ADDRESS_FAILURES: u32 = 20;
const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys kept at most; past it, the forgotten ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Refused until then.
    until: Option<Instant>,
    last: Instant,
}

pub struct Failures {
    keys: Mutex<HashMap<String, Entry>>,
    /// The first refusal's time (then doubling).
    first_wait: Duration,
}

impl Default for Failures {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

fn user_key(user: &str) -> String {
    format!("user:{}", user.trim().to_ascii_lowercase())
}

fn address_key(peer: IpAddr) -> String {
    format!("address:{peer}")
}

impl Failures {
    pub fn new(first_wait: Duration) -> Self {
        Self {
            keys: Mutex::default(),
            first_wait,
        }
    }

    /// How long the user name or the address is still refused, if it is.
    pub fn refused_for(&self, user: &str, peer: IpAddr) -> Option<Duration> {
        let keys = self.keys.lock().expect("failures lock");
        let now = Instant::now();
        [user_key(user), address_key(peer)]
            .iter()
            .filter_map(|k| keys.get(k)?.until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed login of `user` from `peer`.
    pub fn failed(&self, user: &str, peer: IpAddr) {
        let mut keys = self.keys.lock().expect("failures lock");
        let now = Instant::now();
        if keys.len() >= SWEEP_AT {
            keys.retain(|_, e| e.until.unwrap_or(e.last).max(e.last) + FORGET_AFTER > now);
        }
        for (key, threshold) in [
            (user_key(user), USER_FAILURES),
            (address_key(peer), ADDRESS_FAILURES),
        ] {
            let entry = keys.entry(key).or_insert(Entry {
                failures: 0,
                until: None,
                last: now,
            });
            if entry.until.unwrap_or(entry.last).max(entry.last) + FORGET_AFTER <= now {
                entry.failures = 0;
                entry.until = None;
            }
            entry.failures += 1;
            entry.last = now;
            if entry.failures >= threshold {
                let doublings = (entry.failures - threshold).min(20);
                let wait = self
                    .first_wait
                    .saturating_mul(1 << doublings)
                    .min(LONGEST_WAIT);
                entry.until = Some(now + wait);
            }
        }
    }

    /// A login of `user` succeeded: its user name starts over.
    pub fn succeeded(&self, user: &str) {
        self.keys
            .lock()
            .expect("failures lock")
            .remove(&user_key(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST_WAIT: Duration = Duration::from_secs(1);

    #[test]
    fn a_user_name_is_refused_after_its_failures_for_a_doubling_time() {
        let failures = Failures::default();
        let peer: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..USER_FAILURES - 1 {
            failures.failed("A@contoso.cz", peer);
        }
        assert_eq!(failures.refused_for("a@contoso.cz", peer), None);
        failures.failed("a@contoso.cz", peer);
        let first = failures
            .refused_for("a@contoso.cz", other)
            .expect("refused from anywhere");
        assert!(first <= FIRST_WAIT && first > FIRST_WAIT / 2, "{first:?}");
        failures.failed("a@contoso.cz", peer);
        let second = failures
            .refused_for("a@contoso.cz", other)
            .expect("refused");
        assert!(second > FIRST_WAIT, "the time doubles: {second:?}");
        assert_eq!(
            failures.refused_for("b@contoso.cz", other),
            None,
            "another user name"
        );
        failures.succeeded("a@contoso.cz");
        assert_eq!(
            failures.refused_for("a@contoso.cz", other),
            None,
            "a success clears it"
        );
    }

    #[test]
    fn an_address_is_refused_after_more_failures() {
        let failures = Failures::default();
        let peer: IpAddr = "2001:db8::1".parse().expect("ip");
        for i in 0..ADDRESS_FAILURES {
            failures.failed(&format!("user{i}@contoso.cz"), peer);
        }
        assert!(failures.refused_for("new@contoso.cz", peer).is_some());
        let elsewhere: IpAddr = "2001:db8::2".parse().expect("ip");
        assert_eq!(failures.refused_for("new@contoso.cz", elsewhere), None);
    }

    #[test]
    fn the_wait_is_bounded() {
        let failures = Failures::default();
        let peer: IpAddr = "192.0.2.9".parse().expect("ip");
        for _ in 0..100 {
            failures.failed("a@contoso.cz", peer);
        }
        let wait = failures.refused_for("a@contoso.cz", peer).expect("refused");
        assert!(wait <= LONGEST_WAIT, "{wait:?}");
    }
}
