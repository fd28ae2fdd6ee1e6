//! At most N open sessions per mailbox through this instance (Exchange
//! Online allows about 20 IMAP sessions per mailbox; the bridge keeps
//! room for the mailbox's other clients).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::MailboxId;

/// What the listeners of one instance share: the open sessions per
/// mailbox, and the failed logins ([`super::failures`]).
pub struct Sessions {
    per_mailbox: usize,
    open: Mutex<HashMap<MailboxId, usize>>,
    pub failures: super::failures::Failures,
}

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
        }
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
}
