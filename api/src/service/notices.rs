//! Client-secret expiry notices, found by the keep-alive sweep: an
//! `app_credential.secret_expiring` event 30, 14, 7 and 1 days before a
//! secret's `secret_expires_at`, and `app_credential.secret_expired` on the
//! day. Each threshold is given once per credential and expiry date, by
//! whichever instance finds it first (a row in `credential_notices` is the
//! proof, written in the event's transaction); a credential that comes in
//! already closer than a threshold gets the nearest one only. A new expiry
//! date (a new secret) starts over.

use chrono::NaiveDate;

use super::Services;
use super::events::{self, Event};
use crate::error::Result;
use crate::store::app_credentials::{self, Expiring};
use crate::store::{StoreError, write_transaction};

/// Days before the expiry date when `secret_expiring` is given.
pub const THRESHOLDS: [i64; 4] = [30, 14, 7, 1];

/// The notice due for a secret `days_left` days from expiry: the nearest
/// threshold reached (0: expired), or none yet.
pub fn due(days_left: i64) -> Option<i64> {
    if days_left <= 0 {
        return Some(0);
    }
    THRESHOLDS.iter().rev().copied().find(|t| days_left <= *t)
}

impl Services {
    /// Gives the secret-expiry notices that are due on `today`; returns how
    /// many this call gave.
    pub async fn secret_notices(&self, today: NaiveDate) -> Result<usize> {
        let until = today + chrono::Duration::days(THRESHOLDS[0]);
        self.store
            .run(move |c| {
                let mut given = 0;
                for cred in app_credentials::expiring_by(c, until)? {
                    let Some(expires_on) = cred.secret_expires_at else {
                        continue;
                    };
                    let days_left = (expires_on - today).num_days();
                    let Some(threshold) = due(days_left) else {
                        continue;
                    };
                    if notice(c, &cred, expires_on, days_left, threshold)? {
                        given += 1;
                    }
                }
                Ok(given)
            })
            .await
    }
}

/// Gives one notice unless it was given; says whether this call gave it.
fn notice(
    c: &mut crate::store::AnyConnection,
    cred: &Expiring,
    expires_on: NaiveDate,
    days_left: i64,
    threshold: i64,
) -> Result<bool> {
    let event = if threshold == 0 {
        Event::SecretExpired {
            id: cred.id,
            name: cred.name.clone(),
            expires_on,
        }
    } else {
        Event::SecretExpiring {
            id: cred.id,
            name: cred.name.clone(),
            expires_on,
            days_left,
            threshold_days: threshold,
        }
    };
    let threshold = i32::try_from(threshold).unwrap_or(i32::MAX);
    // A savepoint inside the sweep's work: a notice already given rolls back
    // alone, and its event with it.
    let given = write_transaction(c, |c| {
        app_credentials::note_notice(c, cred.id, threshold, expires_on)?;
        events::record(c, &cred.org, &event)?;
        Ok::<_, StoreError>(())
    });
    match given {
        Ok(()) => Ok(true),
        Err(StoreError::Unique) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_threshold_reached_is_due() {
        assert_eq!(due(31), None);
        assert_eq!(due(30), Some(30));
        assert_eq!(due(15), Some(30));
        assert_eq!(due(14), Some(14));
        assert_eq!(due(8), Some(14));
        assert_eq!(due(7), Some(7));
        assert_eq!(due(2), Some(7));
        assert_eq!(due(1), Some(1));
        assert_eq!(due(0), Some(0));
        assert_eq!(due(-3), Some(0));
    }
}
