//! `Principal` as an actix extractor: reads `Authorization: Bearer <jwt>`.
//!
//! A refused token is counted in the metrics; an accepted caller is also
//! kept in the request's extensions, so the per-request middleware can audit
//! a 403 it is answered ([`crate::http::observe`]).

use crate::codes::Code;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use super::{Principal, Verifier};
use crate::error::Error;
use crate::service::Services;

impl FromRequest for Principal {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let result = authenticate(&req).await;
            match &result {
                Ok(principal) => {
                    tracing::Span::current().record("subject", principal.subject.as_str());
                    req.extensions_mut().insert(principal.clone());
                }
                Err(e @ Error::Refused { .. }) => {
                    if let Some(services) = req.app_data::<web::Data<Services>>() {
                        services.metrics.auth_refusal(e.code().as_str());
                    }
                }
                Err(_) => {}
            }
            result
        })
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Principal, Error> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or_else(|| anyhow::anyhow!("no JWT verifier configured"))?;
    let missing = |detail: &str| Error::refused(Code::MissingToken, detail);
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| missing("send `Authorization: Bearer <token>`"))?
        .to_str()
        .map_err(|_| missing("the Authorization header is not readable"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("the Authorization header must be `Bearer <token>`"))?;
    verifier.verify(token).await
}
