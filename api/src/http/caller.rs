//! [`Caller`]: what every authenticated handler starts from, the verified
//! caller and the use cases, extracted together. The caller is extracted
//! first, as it was as a handler's first argument; the use cases authorize it.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::Principal;
use crate::service::Services;

/// The verified caller and the use cases: a handler destructures it as
/// `Caller(who, services): Caller` and passes `&who` to the use case.
pub struct Caller(pub Principal, pub web::Data<Services>);

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let who = Principal::from_request(req, payload);
        let services = web::Data::<Services>::extract(req);
        Box::pin(async move { Ok(Caller(who.await?, services.await?)) })
    }
}
