//! Verified tokens, remembered until they expire, so that a caller who sends
//! the same token again is not verified again (an RSA signature costs tens
//! of microseconds; the claims' parsing a few).
//!
//! An entry is keyed by the token's SHA-256: no token is held in clear. Only
//! accepted tokens are remembered (a refusal is verified again every time),
//! and only until their `exp`; after it the full verification decides again,
//! leeway included, as it would have. What the verifier checks that can change
//! before `exp` is checked again on every use: the key of a JWKS URL, which
//! must still be the one the token was verified with (a key rotated out, or
//! keys too stale to use, end the entry). Everything else the verifier checks
//! is fixed by the token and the configuration (signature, `iss`, `aud`,
//! `typ`, `crit`, the lifetime bound, the subject), or holds from the first
//! acceptance on (`nbf`, `iat` not in the future).
//!
//! The cache holds at most [`CAPACITY`] tokens: when it is full, expired
//! entries are dropped (at most once a second), then an arbitrary one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use sha2::{Digest, Sha256};

use super::Principal;

/// The most tokens remembered at once.
pub(super) const CAPACITY: usize = 10_000;
/// How often a full cache looks for expired entries.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// The SHA-256 of a token.
pub(super) type TokenHash = [u8; 32];

pub(super) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// What an accepted token was verified with, when that can change before it expires.
#[derive(Clone)]
pub(super) struct JwksKey {
    pub kid: String,
    pub key: Arc<DecodingKey>,
}

#[derive(Clone)]
pub(super) struct Verified {
    pub principal: Principal,
    /// The token's `exp` (Unix seconds): the entry is not used from then on.
    pub expires: f64,
    pub jwks_key: Option<JwksKey>,
}

pub(super) struct TokenCache {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    entries: HashMap<TokenHash, Verified>,
    purged: Option<Instant>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl TokenCache {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State {
                entries: HashMap::new(),
                purged: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `hash` while it has not expired at `now` (Unix seconds).
    pub(super) fn get(&self, hash: &TokenHash, now: f64) -> Option<Verified> {
        let mut state = self.lock();
        match state.entries.get(hash) {
            Some(v) if now < v.expires => Some(v.clone()),
            Some(_) => {
                state.entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Forgets `hash` (its JWKS key is no longer the one it was verified with).
    pub(super) fn remove(&self, hash: &TokenHash) {
        self.lock().entries.remove(hash);
    }

    /// Remembers an accepted token; one that has expired at `now` is not kept.
    pub(super) fn insert(&self, hash: TokenHash, verified: Verified, now: f64) {
        if now >= verified.expires || self.capacity == 0 {
            return;
        }
        let mut state = self.lock();
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&hash) {
            let due = state.purged.is_none_or(|t| t.elapsed() >= PURGE_EVERY);
            if due {
                state.entries.retain(|_, v| now < v.expires);
                state.purged = Some(Instant::now());
            }
            if state.entries.len() >= self.capacity
                && let Some(victim) = state.entries.keys().next().copied()
            {
                state.entries.remove(&victim);
            }
        }
        state.entries.insert(hash, verified);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::domain::OrgId;

    fn verified(subject: &str, expires: f64) -> Verified {
        Verified {
            principal: Principal {
                subject: subject.into(),
                org: OrgId::parse("acme").expect("org"),
                roles: vec![Role::Viewer],
            },
            expires,
            jwks_key: None,
        }
    }

    #[test]
    fn entries_end_at_their_expiry() {
        let cache = TokenCache::default();
        let h = hash("token-a");
        cache.insert(h, verified("a", 100.0), 50.0);
        assert_eq!(
            cache.get(&h, 99.0).map(|v| v.principal.subject),
            Some("a".into())
        );
        assert!(cache.get(&h, 100.0).is_none(), "not at exp");
        assert!(cache.get(&h, 99.0).is_none(), "dropped once expired");
        cache.insert(h, verified("a", 100.0), 100.0);
        assert_eq!(cache.len(), 0, "an expired token is not remembered");
    }

    #[test]
    fn keyed_by_the_whole_token() {
        let cache = TokenCache::default();
        cache.insert(hash("token-a"), verified("a", 100.0), 0.0);
        assert!(cache.get(&hash("token-b"), 0.0).is_none());
        assert!(cache.get(&hash("token-a "), 0.0).is_none());
        assert_ne!(hash("token-a"), hash("token-b"));
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::with_capacity(3);
        for (i, expires) in [10.0, 100.0, 100.0].into_iter().enumerate() {
            cache.insert(hash(&format!("t{i}")), verified("x", expires), 0.0);
        }
        // Full: the expired entry goes first.
        cache.insert(hash("t3"), verified("x", 100.0), 20.0);
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&hash("t0"), 5.0).is_none(),
            "the expired one was dropped"
        );
        assert!(cache.get(&hash("t3"), 20.0).is_some());
        // Full of live entries: one of them makes room.
        for i in 4..20 {
            cache.insert(hash(&format!("t{i}")), verified("x", 100.0), 20.0);
            assert!(cache.len() <= 3);
        }
        assert!(
            cache.get(&hash("t19"), 20.0).is_some(),
            "the newest is kept"
        );
    }
}
