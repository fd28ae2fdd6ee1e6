//! Liveness, readiness and metrics, for load balancers, orchestrators and monitoring.

use crate::codes::Code;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::protection::MetricsSettings;
use crate::error::{Error, Result};
use crate::service::Services;

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// Health of the process.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness
///
/// Answers while the process serves requests.
#[utoipa::path(
    tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)),
    security(())
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness
///
/// Answers 200 when the database answers, else 503.
#[utoipa::path(
    tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "Ready", body = Health)),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(services: web::Data<Services>) -> Result<web::Json<Health>> {
    services.store.ping().await?;
    Ok(web::Json(Health {
        status: "ok".into(),
    }))
}

/// Metrics
///
/// Prometheus metrics in the text format 0.0.4: HTTP requests by method,
/// route pattern and status, their durations, token refreshes by outcome,
/// connection checks by first failed step and code, and mailboxes by status
/// (over all organisations, counted in the database at most once per
/// `INBOXLINK_METRICS_CACHE_SECONDS`).
///
/// Not for API tokens: the metrics span every organisation. Served on this
/// listener when `INBOXLINK_METRICS_TOKEN` is set, to callers sending it as
/// `Authorization: Bearer <metrics token>`; or only on the separate listener
/// of `INBOXLINK_METRICS_BIND` (there without a token unless one is set too).
/// Otherwise 404 `metrics_disabled`.
#[utoipa::path(
    tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "The metrics (Prometheus text format 0.0.4)",
            body = String, content_type = "text/plain"),
        (status = 401, description = "No metrics token, or not the metrics token (`missing_token`, `invalid_token`)",
            body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Metrics are not served on this listener (`metrics_disabled`; the detail says how to enable them)",
            body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("metrics_token" = []))
)]
#[get("/metrics")]
pub async fn metrics(
    request: HttpRequest,
    services: web::Data<Services>,
    gate: web::Data<MetricsGate>,
) -> Result<HttpResponse> {
    gate.admit(&request)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(services.metrics_text().await))
}

/// Who may read `/metrics` on one listener.
pub enum MetricsGate {
    /// Neither a metrics token nor a metrics listener is configured.
    Disabled,
    /// Served on the metrics listener only.
    Elsewhere,
    /// Callers must send this token as a bearer token.
    Token(SecretString),
    /// The metrics listener without a token: whoever reaches it.
    Open,
}

impl MetricsGate {
    /// The gate of the main listener.
    pub fn main(settings: &MetricsSettings) -> Self {
        match (&settings.bind, &settings.token) {
            (Some(_), _) => Self::Elsewhere,
            (None, Some(token)) => Self::Token(token.clone()),
            (None, None) => Self::Disabled,
        }
    }

    /// The gate of the metrics listener (`INBOXLINK_METRICS_BIND`).
    pub fn private(settings: &MetricsSettings) -> Self {
        match &settings.token {
            Some(token) => Self::Token(token.clone()),
            None => Self::Open,
        }
    }

    fn admit(&self, request: &HttpRequest) -> Result<()> {
        let expected = match self {
            Self::Open => return Ok(()),
            Self::Token(token) => token,
            Self::Disabled => {
                return Err(Error::refused(
                    Code::MetricsDisabled,
                    "metrics are not served: set INBOXLINK_METRICS_TOKEN (scrapers send it as `Authorization: Bearer <token>`) or INBOXLINK_METRICS_BIND (a separate listener for a private network); see the README, Security",
                ));
            }
            Self::Elsewhere => {
                return Err(Error::refused(
                    Code::MetricsDisabled,
                    "metrics are served on the separate metrics listener (INBOXLINK_METRICS_BIND), not on this one",
                ));
            }
        };
        let unauthorized = |code, detail: &str| Error::refused(code, detail);
        let provided = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized(
                    Code::MissingToken,
                    "send the metrics token (INBOXLINK_METRICS_TOKEN) as `Authorization: Bearer <token>`",
                )
            })?;
        if same_secret(provided, expected.expose_secret()) {
            Ok(())
        } else {
            Err(unauthorized(
                Code::InvalidToken,
                "this is not the metrics token (INBOXLINK_METRICS_TOKEN); API tokens do not open the metrics",
            ))
        }
    }
}

/// Compares in constant time (over digests, so not even the length shows).
fn same_secret(provided: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (
        Sha256::digest(provided.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.as_slice().ct_eq(b.as_slice()).into()
}
