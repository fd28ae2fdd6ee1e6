//! Verification keys from a JWKS URL, cached.
//!
//! The keys are fetched on first use, again in the background once they are
//! older than the TTL, and again (at most every `min_refetch`) when a token
//! names an unknown `kid`. One fetch runs at a time, in a task of its own and
//! outside the cache's lock: a request whose key is cached never waits for it,
//! and the requests that need its result all wait for that one fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

use crate::error::Error;

/// How the keys of a JWKS URL are refreshed. Not configurable: the defaults
/// are the contract; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct JwksRefresh {
    /// How long fetched keys are used before they are fetched again.
    pub ttl: Duration,
    /// Keys fetched longer ago than this are not used, even when the URL fails.
    pub max_stale: Duration,
    /// The URL is fetched at most this often (an unknown `kid`, a failing URL).
    pub min_refetch: Duration,
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_stale: Duration::from_secs(24 * 3600),
            min_refetch: Duration::from_secs(30),
        }
    }
}

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Asymmetric algorithms: the only ones a JWKS key is used with.
pub(super) const JWKS_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A verification key and the algorithms accepted with it.
pub(super) type KeyEntry = (Arc<DecodingKey>, Vec<Algorithm>);

/// The fetch under way; everyone who needs its result awaits a clone.
type Fetch = Shared<BoxFuture<'static, ()>>;

/// The key source of a JWKS URL.
pub(super) struct Jwks(Arc<Inner>);

struct Inner {
    url: Url,
    http: reqwest::Client,
    refresh: JwksRefresh,
    /// Held only to read or update, never across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyEntry>,
    /// The last successful fetch.
    fetched: Option<Instant>,
    /// When the last fetch, successful or not, ended.
    attempted: Option<Instant>,
    fetch: Option<Fetch>,
}

/// What the cache can say about a `kid` right now.
enum Answer {
    Key(KeyEntry),
    /// The key, which is past its TTL: refresh in the background.
    KeyRefresh(KeyEntry),
    /// Only a fetch can tell (the one under way, or a new one).
    Fetch,
    Refuse(Error),
}

impl Jwks {
    pub(super) fn new(url: Url, http: reqwest::Client, refresh: JwksRefresh) -> Self {
        Self(Arc::new(Inner {
            url,
            http,
            refresh,
            state: Mutex::default(),
        }))
    }

    /// The key named `kid`: from the cache, or after the fetch it needs.
    pub(super) async fn key(&self, kid: &str) -> Result<KeyEntry, Error> {
        let fetch = {
            let mut state = self.0.lock();
            match state.answer(kid, Instant::now(), &self.0.refresh) {
                Answer::Key(key) => return Ok(key),
                Answer::Refuse(e) => return Err(e),
                Answer::KeyRefresh(key) => {
                    drop(self.start_fetch(&mut state));
                    return Ok(key);
                }
                Answer::Fetch => self.start_fetch(&mut state),
            }
        };
        fetch.await;
        let state = self.0.lock();
        let now = Instant::now();
        match state.answer(kid, now, &self.0.refresh) {
            Answer::Key(key) | Answer::KeyRefresh(key) => Ok(key),
            Answer::Refuse(e) => Err(e),
            // Never a second fetch for one request.
            Answer::Fetch => Err(state.refusal(now, &self.0.refresh)),
        }
    }

    /// The fetch under way, or a new one.
    fn start_fetch(&self, state: &mut State) -> Fetch {
        if let Some(fetch) = &state.fetch {
            return fetch.clone();
        }
        let inner = self.0.clone();
        let task = tokio::spawn(async move {
            // Ends the fetch even when the task is cancelled (the runtime stops).
            let _end = EndFetch(inner.clone());
            let result = fetch_jwks(&inner.http, &inner.url).await;
            let mut state = inner.lock();
            match result {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, jwks_url = %inner.url, "cannot fetch the JWKS")
                }
            }
        });
        let fetch = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        state.fetch = Some(fetch.clone());
        fetch
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the fetch as over when dropped.
struct EndFetch(Arc<Inner>);

impl Drop for EndFetch {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.fetch = None;
        state.attempted = Some(Instant::now());
    }
}

impl State {
    fn answer(&self, kid: &str, now: Instant, refresh: &JwksRefresh) -> Answer {
        let fetched_age = self.fetched.map(|t| now.saturating_duration_since(t));
        let fresh = fetched_age.is_some_and(|a| a < refresh.ttl);
        let usable = fetched_age.is_some_and(|a| a < refresh.max_stale);
        let in_flight = self.fetch.is_some();
        let tried_recently = self
            .attempted
            .is_some_and(|t| now.saturating_duration_since(t) < refresh.min_refetch);
        match self.keys.get(kid) {
            Some(key) if fresh => Answer::Key(key.clone()),
            Some(key) if usable && !in_flight && !tried_recently => Answer::KeyRefresh(key.clone()),
            Some(key) if usable => Answer::Key(key.clone()),
            _ if in_flight || !tried_recently => Answer::Fetch,
            _ => Answer::Refuse(self.refusal(now, refresh)),
        }
    }

    /// Why a `kid` the cache cannot answer is refused.
    fn refusal(&self, now: Instant, refresh: &JwksRefresh) -> Error {
        let usable = self
            .fetched
            .is_some_and(|t| now.saturating_duration_since(t) < refresh.max_stale);
        if usable {
            super::jwt::invalid("the token's key id is unknown")
        } else {
            Error::Unavailable("the token signing keys cannot be fetched".into())
        }
    }
}

async fn fetch_jwks(
    http: &reqwest::Client,
    url: &Url,
) -> anyhow::Result<HashMap<String, KeyEntry>> {
    let set: JwkSet = http
        .get(url.clone())
        .timeout(FETCH_TIMEOUT)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(usable_keys(&set))
}

/// The signature keys of `set` by `kid`, each with the algorithms it may be
/// used with: those of its key type, or only its `alg` when it names one.
fn usable_keys(set: &JwkSet) -> HashMap<String, KeyEntry> {
    use Algorithm::*;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let of_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
            AlgorithmParameters::EllipticCurve(_) => vec![ES256, ES384],
            AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
            // Symmetric keys are never accepted from a JWKS URL.
            _ => continue,
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let algorithms = match jwk.common.key_algorithm {
            None => of_type,
            Some(named) => match Algorithm::try_from(named) {
                Ok(alg) if of_type.contains(&alg) => vec![alg],
                // An encryption algorithm, one we do not support, or one that
                // does not fit the key: the key is not used at all.
                _ => continue,
            },
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, (Arc::new(key), algorithms));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> KeyEntry {
        (
            Arc::new(DecodingKey::from_secret(b"unused")),
            vec![Algorithm::RS256],
        )
    }

    fn state(fetched_ago: Option<u64>, attempted_ago: Option<u64>, now: Instant) -> State {
        let ago = |s: u64| now - Duration::from_secs(s);
        State {
            keys: HashMap::from([("known".to_owned(), entry())]),
            fetched: fetched_ago.map(ago),
            attempted: attempted_ago.map(ago),
            fetch: None,
        }
    }

    fn kind(a: &Answer) -> &'static str {
        match a {
            Answer::Key(_) => "key",
            Answer::KeyRefresh(_) => "key+refresh",
            Answer::Fetch => "fetch",
            Answer::Refuse(Error::Unavailable(_)) => "unavailable",
            Answer::Refuse(_) => "unknown",
        }
    }

    #[test]
    fn answers_by_age_and_kid() {
        let r = JwksRefresh::default();
        // A far-off now, so `now - 24 h` is a valid Instant.
        let now = Instant::now() + Duration::from_secs(2 * 86_400);
        let cases = [
            // (fetched ago, attempted ago, kid, answer)
            (None, None, "known", "fetch"),
            (None, Some(5), "known", "unavailable"),
            (Some(5), Some(5), "known", "key"),
            (Some(5), Some(5), "other", "unknown"),
            (Some(40), Some(40), "other", "fetch"),
            // Past the TTL: served from the cache, refreshed in the background.
            (Some(700), Some(700), "known", "key+refresh"),
            (Some(700), Some(5), "known", "key"),
            // Past the maximum staleness: no longer served.
            (Some(90_000), Some(90_000), "known", "fetch"),
            (Some(90_000), Some(5), "known", "unavailable"),
        ];
        for (fetched, attempted, kid, want) in cases {
            let got = state(fetched, attempted, now).answer(kid, now, &r);
            assert_eq!(kind(&got), want, "{fetched:?} {attempted:?} {kid}");
        }
        // While a fetch is under way: cached keys at once, the rest wait for it.
        let mut busy = state(Some(700), Some(700), now);
        busy.fetch = Some(async {}.boxed().shared());
        assert_eq!(kind(&busy.answer("known", now, &r)), "key");
        assert_eq!(kind(&busy.answer("other", now, &r)), "fetch");
    }

    #[test]
    fn jwk_use_and_alg_are_honoured() {
        use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
        let pem = include_bytes!("../../../tests/fixtures/jwt-rs256-private.pem");
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem).expect("key");
        let jwk = |kid: &str, key_use: Option<PublicKeyUse>, alg: Option<KeyAlgorithm>| {
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
            jwk.common.key_id = Some(kid.into());
            jwk.common.public_key_use = key_use;
            jwk.common.key_algorithm = alg;
            jwk
        };
        let set = JwkSet {
            keys: vec![
                jwk("plain", None, None),
                jwk("sig", Some(PublicKeyUse::Signature), None),
                jwk("enc", Some(PublicKeyUse::Encryption), None),
                jwk("other-use", Some(PublicKeyUse::Other("x".into())), None),
                jwk("ps256", None, Some(KeyAlgorithm::PS256)),
                jwk("oaep", None, Some(KeyAlgorithm::RSA_OAEP)),
                jwk("es256-on-rsa", None, Some(KeyAlgorithm::ES256)),
            ],
        };
        let keys = usable_keys(&set);
        let mut kids: Vec<_> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["plain", "ps256", "sig"]);
        assert_eq!(keys["ps256"].1, [Algorithm::PS256]);
        assert_eq!(keys["plain"].1.len(), 6);
    }
}
