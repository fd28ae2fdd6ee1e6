//! The POST of one delivery: Standard Webhooks headers, JSON body, a 10 s
//! deadline, no redirects followed, every connection to an address
//! [`super::guard`] allows, and at most 1 KB of the answer kept.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use url::Url;

use super::guard::Policy;
use super::signing;

/// A delivery is a success when the receiver answers 2xx within this.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How much of a receiver's answer is kept.
pub const MAX_RESPONSE: usize = 1024;

/// What to send.
pub struct Message<'a> {
    pub url: &'a Url,
    /// The event id (`webhook-id`, the same for every attempt).
    pub id: &'a str,
    pub timestamp: i64,
    pub body: &'a [u8],
    /// The current secret first; during a rotation the previous one too.
    pub secrets: Vec<&'a SecretString>,
}

/// How the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: Option<u16>,
    /// Why there is no status (refused address, timeout, connection reset).
    pub error: Option<String>,
    pub duration: Duration,
    /// The start of the answer's body.
    pub response: Option<String>,
}

impl Answer {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `410 Gone`: the receiver wants no more deliveries.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// Posts webhook deliveries (the client comes from `crate::startup`, with
/// the guard's resolver and no redirects).
#[derive(Clone)]
pub struct Sender {
    pub http: reqwest::Client,
    pub policy: Policy,
}

impl Sender {
    pub async fn post(&self, m: Message<'_>) -> Answer {
        let started = Instant::now();
        let failed = |error: String| Answer {
            status: None,
            error: Some(error),
            duration: started.elapsed(),
            response: None,
        };
        // A literal address is not resolved, so it is checked here.
        if let Err(e) = self.policy.check_url(m.url) {
            return failed(e.0);
        }
        let signature = signing::signature_header(&m.secrets, m.id, m.timestamp, m.body);
        let sent = self
            .http
            .post(m.url.clone())
            .timeout(DEADLINE)
            .header("content-type", "application/json")
            .header("webhook-id", m.id)
            .header("webhook-timestamp", m.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(m.body.to_vec())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < MAX_RESPONSE {
            match tokio::time::timeout(DEADLINE.saturating_sub(started.elapsed()), response.chunk())
                .await
            {
                Ok(Ok(Some(chunk))) => kept.extend_from_slice(&chunk),
                _ => break,
            }
        }
        kept.truncate(MAX_RESPONSE);
        Answer {
            status: Some(status),
            error: None,
            duration: started.elapsed(),
            response: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return format!("no answer within {} s", DEADLINE.as_secs());
    }
    // The guard's refusal travels as the source of the connect error.
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<super::guard::NotAllowed>() {
            return refused.to_string();
        }
        source = s.source();
    }
    if e.is_connect() {
        "the connection failed".into()
    } else if e.is_redirect() {
        "a redirect (not followed)".into()
    } else {
        "the request failed".into()
    }
}
