//! Per-caller rate limits on the operations whose effect costs far more than
//! the request (a call to Microsoft, IMAP and SMTP sessions, a test message,
//! a stored sign-in state).
//!
//! Each [`Limited`] class has a token bucket per caller: the caller is the
//! verified token's organisation and subject, so one integration cannot use
//! up another's allowance. A rate `N/min` allows a burst of `N` calls and
//! refills one call every `1/N` minute. The buckets live in this instance's
//! memory (GCRA, the `governor` crate): with several instances behind a load
//! balancer each instance counts on its own. Callers that stopped calling are
//! dropped by the housekeeping pass ([`Limits::retain_recent`]), so the memory
//! is bounded by the callers active within one refill period.
//!
//! A handler applies a limit with one line, after the permission check:
//!
//! ```ignore
//! services.limits.check(&principal, Limited::AdminConsent)?;
//! ```
//!
//! and declares the refusal in its spec: `responses(..., crate::http::problem::RateLimited)`.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::Principal;
use crate::error::Error;

/// The classes of limited operations. Each has its own bucket per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limited {
    /// `GET /app-credentials/{id}/setup`: mints an admin-consent state each time.
    Setup,
    /// `POST /app-credentials/{id}/verify`: a client-credentials request to Microsoft.
    Verify,
    /// `POST /mailboxes/{id}/refresh`: a sign-in state, or (app-only) a token request.
    Refresh,
    /// `POST /mailboxes/{id}/check` without a test message: a token, an IMAP and an SMTP session.
    Check,
    /// `POST /mailboxes/{id}/check` with `send_test_message`: all that, plus a message sent.
    CheckSend,
    /// `GET /mailboxes/{id}/access-token`: may refresh at Microsoft; audited.
    AccessToken,
    /// `POST /app-credentials/{id}/admin-consent`: mints an admin-consent link.
    AdminConsent,
}

impl Limited {
    pub const ALL: [Limited; 7] = [
        Limited::Setup,
        Limited::Verify,
        Limited::Refresh,
        Limited::Check,
        Limited::CheckSend,
        Limited::AccessToken,
        Limited::AdminConsent,
    ];

    /// The name in `INBOXLINK_RATE_LIMITS`.
    pub fn name(self) -> &'static str {
        match self {
            Limited::Setup => "setup",
            Limited::Verify => "verify",
            Limited::Refresh => "refresh",
            Limited::Check => "check",
            Limited::CheckSend => "check_send",
            Limited::AccessToken => "access_token",
            Limited::AdminConsent => "admin_consent",
        }
    }

    /// What the caller did too often, for the problem's detail.
    fn describe(self) -> &'static str {
        match self {
            Limited::Setup => "set-up views",
            Limited::Verify => "app credential verifications",
            Limited::Refresh => "refreshes (sign-ins started)",
            Limited::Check => "connection checks",
            Limited::CheckSend => "connection checks with a test message",
            Limited::AccessToken => "access token requests",
            Limited::AdminConsent => "admin-consent links",
        }
    }

    /// The default rate (README, "Security").
    pub fn default_rate(self) -> Rate {
        let per_minute = match self {
            Limited::Setup => 30,
            Limited::Verify => 10,
            Limited::Refresh => 20,
            Limited::Check => 10,
            Limited::CheckSend => 2,
            Limited::AccessToken => 300,
            Limited::AdminConsent => 10,
        };
        Rate::per_minute(per_minute)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `count` calls per `per`: a burst of `count`, refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    fn per_minute(n: u32) -> Rate {
        Rate {
            count: NonZeroU32::new(n).expect("a positive default rate"),
            per: Duration::from_secs(60),
        }
    }

    fn quota(self) -> Quota {
        let every = self.per / self.count.get();
        Quota::with_period(every.max(Duration::from_nanos(1)))
            .expect("a positive period")
            .allow_burst(self.count)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// The configured rate of every class (`None`: not limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    rates: [Option<Rate>; Limited::ALL.len()],
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            rates: Limited::ALL.map(|l| Some(l.default_rate())),
        }
    }
}

impl RateLimits {
    /// The defaults, with the items of `INBOXLINK_RATE_LIMITS` applied:
    /// comma-separated `name=N/s`, `name=N/min`, `name=N/h` or `name=off`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut limits = Self::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let names = || {
                Limited::ALL
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected name=N/min (names: {})", names()))?;
            let class = Limited::ALL
                .into_iter()
                .find(|l| l.name() == name.trim())
                .ok_or_else(|| format!("`{item}`: unknown name (names: {})", names()))?;
            let value = value.trim();
            limits.rates[class.index()] = if value == "off" {
                None
            } else {
                Some(parse_rate(value).map_err(|e| format!("`{item}`: {e}"))?)
            };
        }
        Ok(limits)
    }

    pub fn rate(&self, class: Limited) -> Option<Rate> {
        self.rates[class.index()]
    }
}

fn parse_rate(value: &str) -> Result<Rate, String> {
    let expected = "expected N/s, N/min, N/h (N 1..=100000) or off";
    let (count, unit) = value.split_once('/').ok_or(expected)?;
    let count = count
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .and_then(NonZeroU32::new)
        .ok_or(expected)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(expected.into()),
    };
    Ok(Rate { count, per })
}

/// Who a bucket belongs to: (organisation, subject).
type Caller = (String, String);
type Limiter<C> =
    RateLimiter<Caller, HashMapStateStore<Caller>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The buckets of this instance, one keyed limiter per class.
pub struct Limits<C: Clock = DefaultClock> {
    limiters: Vec<Option<(Rate, Limiter<C>)>>,
    clock: C,
}

impl<C: Clock> fmt::Debug for Limits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Limits")
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&RateLimits::default())
    }
}

impl Limits {
    pub fn new(rates: &RateLimits) -> Self {
        Self::with_clock(rates, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// With another clock (tests use a fake one).
    pub fn with_clock(rates: &RateLimits, clock: C) -> Self {
        let limiters = Limited::ALL
            .iter()
            .map(|class| {
                rates.rate(*class).map(|rate| {
                    (
                        rate,
                        RateLimiter::hashmap_with_clock(rate.quota(), clock.clone()),
                    )
                })
            })
            .collect();
        Self { limiters, clock }
    }

    /// Takes one call of `class` from the caller's bucket, or refuses with
    /// 429 `rate_limited` and how long to wait.
    pub fn check(&self, who: &Principal, class: Limited) -> Result<(), Error> {
        let Some((rate, limiter)) = &self.limiters[class.index()] else {
            return Ok(());
        };
        let caller = (who.org.as_str().to_owned(), who.subject.clone());
        match limiter.check_key(&caller) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(Error::RateLimited {
                    what: class.describe(),
                    rate: rate.to_string(),
                    retry_after: whole_seconds_up(wait),
                })
            }
        }
    }

    /// Forgets the callers whose buckets are full again (they would be
    /// created afresh, identically); returns how many callers are remembered.
    pub fn retain_recent(&self) -> usize {
        self.limiters
            .iter()
            .flatten()
            .map(|(_, limiter)| {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            })
            .sum()
    }
}

/// Seconds to wait, rounded up, at least 1 (the `Retry-After` value).
fn whole_seconds_up(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::auth::Role;
    use crate::domain::OrgId;

    fn caller(org: &str, sub: &str) -> Principal {
        Principal {
            subject: sub.into(),
            org: OrgId::parse(org).expect("org"),
            roles: vec![Role::Admin],
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = RateLimits::default();
        let rate = |l: &RateLimits, c| l.rate(c).expect("limited").count.get();
        assert!(
            rate(&defaults, Limited::CheckSend) < rate(&defaults, Limited::Check),
            "a check with a test message is stricter"
        );
        let set = RateLimits::parse(" check = 3/min, verify=5/h,access_token=off ,refresh=2/s")
            .expect("valid");
        assert_eq!(set.rate(Limited::Check).expect("set").to_string(), "3/min");
        assert_eq!(set.rate(Limited::Verify).expect("set").to_string(), "5/h");
        assert_eq!(set.rate(Limited::Refresh).expect("set").to_string(), "2/s");
        assert_eq!(set.rate(Limited::AccessToken), None);
        assert_eq!(
            set.rate(Limited::Setup),
            defaults.rate(Limited::Setup),
            "what is not named keeps its default"
        );
        for bad in [
            "check",
            "nope=1/min",
            "check=0/min",
            "check=5/day",
            "check=x/min",
        ] {
            assert!(RateLimits::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_per_caller_refills_and_is_forgotten_when_full() {
        let clock = FakeRelativeClock::default();
        let rates = RateLimits::parse("check=2/min").expect("valid");
        let limits = Limits::with_clock(&rates, clock.clone());
        let alice = caller("acme", "alice");
        for _ in 0..2 {
            limits
                .check(&alice, Limited::Check)
                .expect("within the burst");
        }
        let Err(Error::RateLimited {
            retry_after, rate, ..
        }) = limits.check(&alice, Limited::Check)
        else {
            panic!("the third call is refused");
        };
        assert_eq!((retry_after, rate.as_str()), (30, "2/min"));
        // Others have their own buckets: another subject, the same subject in another org,
        // and another class.
        limits
            .check(&caller("acme", "bob"), Limited::Check)
            .expect("bob");
        limits
            .check(&caller("other", "alice"), Limited::Check)
            .expect("alice elsewhere");
        limits
            .check(&alice, Limited::Verify)
            .expect("another class");

        clock.advance(Duration::from_millis(29_500));
        let Err(Error::RateLimited { retry_after, .. }) = limits.check(&alice, Limited::Check)
        else {
            panic!("still refused");
        };
        assert_eq!(retry_after, 1, "half a second left rounds up");
        clock.advance(Duration::from_millis(500));
        limits.check(&alice, Limited::Check).expect("refilled");

        // Memory: callers whose buckets are full again are forgotten.
        assert!(limits.retain_recent() >= 1, "alice's bucket is not full");
        clock.advance(Duration::from_secs(120));
        assert_eq!(limits.retain_recent(), 0);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2001)), 3);
    }
}
