//! The HTTP layer: one file per resource, extractor error handling, problem
//! documents. Handlers are thin: extract, call the use case (which
//! authorizes the caller), answer; an authenticated one starts from
//! [`caller::Caller`], the caller and the use cases in one extractor, so its
//! body is the use case's call. Each operation is written once: its path
//! and method in the actix route macro, its documentation in
//! `#[utoipa::path]`; [`api`] registers them, and the spec is collected from
//! that same registration ([`crate::openapi`]).

pub mod app_credentials;
pub mod audit;
pub mod bridge;
pub mod caller;
pub mod email_alerts;
pub mod events;
pub mod extractors;
pub mod headers;
pub mod health;
pub mod mailboxes;
pub mod oauth;
pub mod observe;
pub mod problem;
mod refusal;
pub mod webhooks;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::codes::Code;
use crate::error::Error;

/// Every operation of the API (and of its spec).
pub fn api(cfg: &mut ServiceConfig) {
    cfg.app_data(extractors::json_config())
        .app_data(extractors::path_config())
        .app_data(extractors::query_config());
    health::services(cfg);
    app_credentials::services(cfg);
    mailboxes::services(cfg);
    bridge::services(cfg);
    audit::services(cfg);
    events::services(cfg);
    webhooks::services(cfg);
    email_alerts::services(cfg);
    oauth::services(cfg);
}

/// What is served beside the operations: 405 for the operations' paths with
/// another method (with the `Allow` header RFC 9110 requires: the methods the
/// path has), the spec and the interactive docs.
pub fn rest(cfg: &mut web::ServiceConfig) {
    for path in crate::openapi::paths() {
        cfg.service(web::resource(path).to(method_not_allowed));
    }
    cfg.route("/openapi.json", web::get().to(openapi_json))
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

/// Answer for a known path with a method it does not have, with the `Allow`
/// header RFC 9110 requires there: the methods the path has.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError as _;
    let mut response = Error::refused(
        Code::MethodNotAllowed,
        "this path does not support this method; see /docs",
    )
    .error_response();
    let allow = req
        .match_pattern()
        .and_then(|pattern| allowed_methods().get(&pattern))
        .and_then(|allow| HeaderValue::from_str(allow).ok());
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// Each operation path with its methods, as an `Allow` value (`GET, PATCH`;
/// no HEAD: a GET route does not answer HEAD, which gets this 405 too).
fn allowed_methods() -> &'static std::collections::HashMap<String, String> {
    static ALLOWED: std::sync::LazyLock<std::collections::HashMap<String, String>> =
        std::sync::LazyLock::new(|| {
            crate::openapi::spec()
                .paths
                .paths
                .into_iter()
                .map(|(path, item)| {
                    let methods: Vec<&str> = [
                        ("GET", item.get.is_some()),
                        ("HEAD", item.head.is_some()),
                        ("POST", item.post.is_some()),
                        ("PUT", item.put.is_some()),
                        ("PATCH", item.patch.is_some()),
                        ("DELETE", item.delete.is_some()),
                        ("OPTIONS", item.options.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(method, has)| has.then_some(method))
                    .collect();
                    (path, methods.join(", "))
                })
                .collect()
        });
    &ALLOWED
}

/// Answer for paths the API does not have.
pub async fn not_found() -> Result<HttpResponse, Error> {
    Err(Error::refused(
        Code::RouteNotFound,
        "no such operation; see /docs",
    ))
}

/// 201 Created: the new resource, and where it is from now on
/// (`{collection}/{id}`).
fn created(
    collection: &str,
    id: impl std::fmt::Display,
    resource: impl serde::Serialize,
) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{collection}/{id}"),
        ))
        .json(resource)
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::spec_json())
}
