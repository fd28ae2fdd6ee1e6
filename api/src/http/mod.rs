//! The HTTP layer: routes, extractor error handling, problem documents.
//! Handlers are thin: extract, authorize, call a service, answer.

pub mod app_credentials;
pub mod check;
pub mod extractors;
pub mod headers;
pub mod health;
pub mod mailboxes;
pub mod oauth;
pub mod observe;
pub mod problem;
mod refusal;
pub mod signin;

use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::Error;

/// Every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extractors::json_config())
        .app_data(extractors::path_config())
        .app_data(extractors::query_config())
        .configure(health::routes)
        .configure(app_credentials::routes)
        .configure(mailboxes::routes)
        .configure(signin::routes)
        .configure(check::routes)
        .configure(oauth::routes)
        .route("/openapi.json", web::get().to(openapi_json))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::Found()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"])));
}

/// A resource whose unsupported methods answer 405 with a problem document.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Answer for a known path with a method it does not have.
pub async fn method_not_allowed() -> Result<HttpResponse, Error> {
    Err(Error::BadRequest {
        code: "method_not_allowed",
        detail: "this path does not support this method; see /docs".into(),
    })
}

/// Answer for paths the API does not have.
pub async fn not_found() -> Result<HttpResponse, Error> {
    Err(Error::BadRequest {
        code: "route_not_found",
        detail: "no such operation; see /docs".into(),
    })
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::spec_json())
}
