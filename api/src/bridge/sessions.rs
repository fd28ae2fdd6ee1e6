//! At most N open sessions per mailbox through this instance (Exchange
//! Online allows about 20 IMAP sessions per mailbox; the bridge keeps
//! room for the mailbox's other clients), and the addresses that logged in
//! lately (their connections get an early upstream connection, see
//! `super::Early`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Cloud, MailboxId};

/// What the listeners of one instance share: the open sessions per
/// mailbox, and the failed logins ([`super::failures`]).
pub struct Sessions {
    per_mailbox: usize,
    open: Mutex<HashMap<MailboxId, usize>>,
    pub failures: super::failures::Failures,
    /// When each address last logged in with a bridge password.
    /// Addresses that logged in with a bridge password: when, and to which cloud.
    logged_in: Mutex<HashMap<IpAddr, (Instant, Cloud)>>,
}

/// How long an address that logged in counts as known.
const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);
/// Most addresses remembered; past it, the oldest are forgotten first.
const KNOWN_MAX: usize = 4096;

/// One open session; dropping it frees its place.
pub struct Permit {
    sessions: Arc<Sessions>,
    mailbox: MailboxId,
}

impl Sessions {
    pub fn new(per_mailbox: usize, failed_login_wait: std::time::Duration) -> Self {
        Self {
            per_mailbox,
            open: Mutex::default(),
            failures: super::failures::Failures::new(failed_login_wait),
            logged_in: Mutex::default(),
        }
    }

    /// Notes a login with a bridge password from `ip`.
    pub fn logged_in_from(&self, ip: IpAddr, cloud: Cloud) {
        let mut known = self.logged_in.lock().expect("sessions lock");
        let now = Instant::now();
        if known.len() >= KNOWN_MAX && !known.contains_key(&ip) {
            known.retain(|_, (at, _)| now.duration_since(*at) < KNOWN_FOR);
            if known.len() >= KNOWN_MAX {
                let oldest = known
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(ip, _)| *ip);
                oldest.map(|ip| known.remove(&ip));
            }
        }
        known.insert(ip, (now, cloud));
    }

    /// The cloud of the mailbox `ip` last logged in to with a bridge
    /// password, if that was within the last day.
    pub fn known(&self, ip: IpAddr) -> Option<Cloud> {
        let known = self.logged_in.lock().expect("sessions lock");
        known
            .get(&ip)
            .filter(|(at, _)| at.elapsed() < KNOWN_FOR)
            .map(|(_, cloud)| *cloud)
    }

    pub fn limit(&self) -> usize {
        self.per_mailbox
    }

    /// A place for one more session of `mailbox`, unless it has its limit.
    pub fn open(self: &Arc<Self>, mailbox: MailboxId) -> Option<Permit> {
        let mut open = self.open.lock().expect("sessions lock");
        let count = open.entry(mailbox).or_default();
        if *count >= self.per_mailbox {
            return None;
        }
        *count += 1;
        Some(Permit {
            sessions: self.clone(),
            mailbox,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().expect("sessions lock");
        if let Some(count) = open.get_mut(&self.mailbox) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.mailbox);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_mailbox_and_freed_on_drop() {
        let sessions = Arc::new(Sessions::new(2, std::time::Duration::from_secs(1)));
        let (a, b) = (MailboxId::new(), MailboxId::new());
        let first = sessions.open(a).expect("one");
        let second = sessions.open(a).expect("two");
        assert!(sessions.open(a).is_none(), "the third is refused");
        let other = sessions.open(b).expect("another mailbox has its own");
        drop(first);
        let again = sessions.open(a).expect("a place was freed");
        drop((second, again, other));
        assert!(sessions.open.lock().expect("lock").is_empty());
    }

    #[test]
    fn addresses_that_logged_in_are_known_and_the_oldest_forgotten_first() {
        let sessions = Sessions::new(2, Duration::from_secs(1));
        let ip = |i: usize| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        assert_eq!(sessions.known(ip(0)), None);
        for i in 0..KNOWN_MAX {
            sessions.logged_in_from(ip(i), Cloud::Global);
        }
        assert!(sessions.known(ip(0)).is_some() && sessions.known(ip(KNOWN_MAX - 1)).is_some());
        sessions.logged_in_from(ip(0), Cloud::Usgov);
        assert_eq!(
            sessions.known(ip(0)),
            Some(Cloud::Usgov),
            "the last login's cloud"
        );
        // One more address: the one that logged in longest ago goes.
        sessions.logged_in_from(ip(KNOWN_MAX), Cloud::Global);
        assert_eq!(sessions.known(ip(1)), None, "the oldest is forgotten");
        assert!(sessions.known(ip(0)).is_some() && sessions.known(ip(KNOWN_MAX)).is_some());
        assert_eq!(sessions.logged_in.lock().expect("lock").len(), KNOWN_MAX);
    }
}
