//! The HTTP under `oauth2`: requests to the identity provider over the
//! service's one reqwest client, each on the service's runtime, under the
//! shared concurrency cap and its own timeout; redirects refused, 429 and 5xx
//! kept with their status and `Retry-After` for the retry policy.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;

/// The adapter between `oauth2` and the shared reqwest client (one HTTP
/// client version, one TLS stack). 429 and 5xx answers become
/// [`Transport::Busy`] so their status and `Retry-After` survive.
///
/// Each request runs as a task on the runtime the service was built on, not
/// on the HTTP worker that asked: the client pools connections, and a pooled
/// connection lives on the runtime that opened it, so a worker that stops
/// (a graceful shutdown stops idle workers first) would otherwise cut the
/// token request another worker is making over that connection.
///
/// A request first takes a permit of the shared semaphore (at most
/// `INBOXLINK_IDP_MAX_CONCURRENCY` in flight); waiting for it counts against
/// the request's own timeout.
#[derive(Clone)]
pub(super) struct HttpAdapter {
    pub(super) http: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) permits: Arc<Semaphore>,
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpAdapter {
    type Error = Transport;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, Transport>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let (http, timeout, permits) = (self.http.clone(), self.timeout, self.permits.clone());
        let task = self.runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, permits.acquire_owned()).await
            else {
                tracing::warn!("no free slot for a request to the identity provider in time");
                return Err(Transport::Failed("timeout"));
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            send(http, left, request).await
        });
        Box::pin(async move {
            task.await
                .unwrap_or(Err(Transport::Failed("connection failed")))
        })
    }
}

async fn send(
    http: reqwest::Client,
    timeout: Duration,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, Transport> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            Transport::Failed(if e.is_timeout() {
                "timeout"
            } else {
                "connection failed"
            })
        })?;
    let status = response.status();
    // Redirects are not followed (the client's policy): a token request
    // carries the client secret, the code and its verifier or a refresh
    // token, which must not be re-sent to wherever a `Location` points.
    if status.is_redirection() {
        tracing::warn!(
            status = status.as_u16(),
            "the identity provider answered a redirect; not followed"
        );
        return Err(Transport::Failed("redirect refused"));
    }
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|_| Transport::Failed("connection failed"))?;
    if status.as_u16() == 429 || status.is_server_error() {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let error = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        return Err(Transport::Busy {
            status: status.as_u16(),
            retry_after,
            error,
        });
    }
    let mut builder = oauth2::http::Response::builder().status(status);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    builder
        .body(bytes.to_vec())
        .map_err(|_| Transport::Failed("invalid response"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
    pub(crate) error_description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Transport {
    #[error("{0}")]
    Failed(&'static str),
    #[error("HTTP {status}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
        error: Option<ErrorBody>,
    },
}
