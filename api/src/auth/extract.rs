//! `Principal` as an actix extractor: reads `Authorization: Bearer <jwt>`.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use super::{Principal, Verifier};
use crate::error::Error;

impl FromRequest for Principal {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|h| h.to_str().map(str::to_owned));
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| anyhow::anyhow!("no JWT verifier configured"))?;
            let missing = |detail: &str| Error::Unauthorized {
                code: "missing_token",
                detail: detail.into(),
            };
            let header = header
                .ok_or_else(|| missing("send `Authorization: Bearer <token>`"))?
                .map_err(|_| missing("the Authorization header is not readable"))?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| missing("the Authorization header must be `Bearer <token>`"))?;
            let principal = verifier.verify(token).await?;
            tracing::Span::current().record("subject", principal.subject.as_str());
            Ok(principal)
        })
    }
}
