//! The OpenAPI document, generated from the handlers and types.
//!
//! utoipa emits OpenAPI 3.1 (`openapi/inboxlink.json`); the SDK generator
//! reads 3.0 only, so [`downgrade_to_30`] derives `openapi/inboxlink-3.0.json`.
//! Both files are committed; a test regenerates and compares them. The
//! operations are collected from the same registration that serves them
//! ([`crate::http::api`]); this module adds what is common to all of them.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::http::problem;
use crate::service;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inboxlink API",
        description = "Connects organisation mailboxes on Microsoft 365 to the applications that use them, over OAuth 2.0.\n\n\
            Authenticate with `Authorization: Bearer <JWT>`. Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // Relative: the spec is served by the service itself (`/openapi.json`),
    // so this is its own origin in every deployment.
    servers((
        url = "/",
        description = "This Inboxlink: the root of the origin that serves this document (`INBOXLINK_PUBLIC_URL`)"
    )),
    components(schemas(problem::Problem, problem::ProblemField, service::mailboxes::CheckStepStatus)),
    modifiers(&Security),
    tags(
        (name = "app-credentials", description = "Entra ID app registrations that mailboxes sign in with"),
        (name = "mailboxes", description = "Mailboxes, their authorization and status"),
        (name = "oauth", description = "The redirect URI Microsoft sends the browser back to"),
        (name = "audit", description = "Who did what"),
        (name = "events", description = "What changed that a person or a system may have to act on"),
        (name = "webhooks", description = "Signed deliveries of the events to receivers (Standard Webhooks)"),
        (name = "email-alerts", description = "The events as messages to people"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let mut metrics = Http::new(HttpAuthScheme::Bearer);
        metrics.description = Some(
            "The operator's metrics token (`INBOXLINK_METRICS_TOKEN`), not an API token".into(),
        );
        components.add_security_scheme("metrics_token", SecurityScheme::Http(metrics));
    }
}

/// The document: [`ApiDoc`] with the operations of [`crate::http::api`].
pub fn spec() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_, spec) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::http::api)
        .split_for_parts();
    spec
}

/// The paths of the operations, in actix's pattern syntax (the same as the spec's).
pub fn paths() -> Vec<String> {
    spec().paths.paths.keys().cloned().collect()
}

/// The 3.1 document as committed in `openapi/inboxlink.json` (built once).
pub fn spec_json() -> String {
    static SPEC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut value = serde_json::to_value(spec()).expect("the spec serializes");
        add_error_responses(&mut value);
        list_known_codes(&mut value);
        let mut text = serde_json::to_string_pretty(&value).expect("the spec serializes");
        text.push('\n');
        text
    });
    SPEC.clone()
}

/// The 3.0 form as committed in `openapi/inboxlink-3.0.json`.
pub fn spec_30_json() -> String {
    let value: Value = serde_json::from_str(&spec_json()).expect("valid JSON");
    let mut text =
        serde_json::to_string_pretty(&downgrade_to_30(value)).expect("the spec serializes");
    text.push('\n');
    text
}

/// Answers of the HTTP server itself (actix-web) to any request, before an
/// operation runs: no body, so no media type.
pub const SERVER_RESPONSES: [(&str, &str); 1] = [(
    "431",
    "Request Header Fields Too Large: too many header fields or too large a request head; \
     refused by the HTTP server before the operation runs, without a body",
)];

/// Lists the known values of each `code` field in its description (the
/// field stays a string, so a new code does not break an older client).
fn list_known_codes(spec: &mut Value) {
    use crate::codes::{Code, Use};
    let fields: [(&str, &str, &[Use]); 6] = [
        ("Problem", "code", &[Use::Problem]),
        ("ProblemField", "code", &[Use::Field]),
        ("StatusDetail", "code", &[Use::Detail]),
        ("LastError", "code", &[Use::Detail]),
        ("CheckStep", "code", &[Use::Check]),
        ("VerifyResult", "code", &[Use::Verify, Use::Detail]),
    ];
    for (schema, field, uses) in fields {
        let Some(property) = spec
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let known: Vec<String> = Code::ALL
            .iter()
            .filter(|c| uses.iter().any(|u| c.is(*u)))
            .map(|c| format!("`{c}`"))
            .collect();
        let before = property
            .get("description")
            .and_then(Value::as_str)
            .map(|d| format!("{d}\n\n"))
            .unwrap_or_default();
        property.insert(
            "description".into(),
            Value::String(format!(
                "{before}Known values (more may come; treat an unknown one as a failure of its kind): {}.",
                known.join(", ")
            )),
        );
    }
}

/// Adds the problem responses every operation can give, derived from what it
/// is: authenticated (401, 403), addressing an `{id}` (400, 404), taking a body
/// (400, 413, 415, 422), and 500 / 503 everywhere; and the HTTP server's own
/// body-less answers ([`SERVER_RESPONSES`]) to every operation, browser pages
/// included. Declared ones are kept.
fn add_error_responses(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_method, op) in item.iter_mut() {
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                });
            let has_body = op.get("requestBody").is_some();
            let mut codes: Vec<(&str, &str)> = Vec::new();
            if secured {
                codes.push((
                    "401",
                    "Missing or invalid bearer token (`missing_token`, `invalid_token`)",
                ));
            }
            // Roles come with API tokens (JWTs) only.
            let with_roles = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if with_roles {
                codes.push(("403", "The token's roles do not allow this (`forbidden`)"));
            }
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if path.contains('{') {
                codes.push(("400", "Malformed request (`invalid_id`, `malformed_json`)"));
                codes.push((
                    "404",
                    "No such resource in the caller's organisation (`not_found`)",
                ));
            } else if has_body || has_query {
                codes.push((
                    "400",
                    "Malformed request (`malformed_json`, `invalid_query`)",
                ));
            }
            if has_body {
                codes.push(("413", "The body is too large (`payload_too_large`)"));
                codes.push(("415", "The body is not JSON (`unsupported_media_type`)"));
            }
            if has_body || has_query {
                codes.push((
                    "422",
                    "Invalid fields (`validation_failed`, `invalid_body`)",
                ));
            }
            codes.push(("500", "Unexpected error (`internal`)"));
            codes.push(("503", "The database is not available (`unavailable`)"));
            // Browser-facing pages document their own (HTML) answers.
            let html = op["responses"]
                .as_object()
                .is_some_and(|r| r.values().any(|r| r["content"].get("text/html").is_some()));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            if html {
                codes.clear();
            }
            for (code, description) in codes {
                responses.entry(code).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                    })
                });
            }
            for (code, description) in SERVER_RESPONSES {
                responses
                    .entry(code)
                    .or_insert_with(|| json!({ "description": description }));
            }
            let mut sorted: Vec<_> = std::mem::take(responses).into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            responses.extend(sorted);
        }
    }
}

/// OpenAPI 3.1 -> 3.0.3, for generators that read 3.0 only.
///
/// - `openapi` becomes `3.0.3`; `info.license.identifier` is dropped;
/// - `type: [T, "null"]` becomes `type: T, nullable: true`;
/// - `oneOf`/`anyOf: [X, {type: null}]` becomes `allOf: [X], nullable: true`;
/// - a `$ref` with sibling keywords becomes `allOf: [{$ref}]` plus the siblings;
/// - `examples: [..]` in a schema becomes `example`; `const: v` becomes `enum: [v]`;
/// - browser-facing pages (HTML answers: the OAuth callback) are left out;
/// - `application/problem+json` bodies are declared as `application/json`, the
///   only media type generators such as progenitor type (the body is the same
///   JSON document, so a typed client reads it as is);
/// - error responses without a body (the HTTP server's own, such as 431) are
///   left out: progenitor types one error body per operation, and a client
///   gets such a status as an unexpected response either way.
pub fn downgrade_to_30(mut spec: Value) -> Value {
    drop_browser_pages(&mut spec);
    drop_bodyless_errors(&mut spec);
    rename_problem_media_type(&mut spec);
    if let Some(obj) = spec.as_object_mut() {
        obj.insert("openapi".into(), json!("3.0.3"));
        if let Some(license) = obj
            .get_mut("info")
            .and_then(|i| i.get_mut("license"))
            .and_then(Value::as_object_mut)
        {
            license.remove("identifier");
        }
    }
    walk(&mut spec, false);
    spec
}

/// Browser-facing pages (the OAuth callback, answering HTML or a redirect)
/// are not operations of a typed client: the 3.0 form leaves them out.
fn drop_browser_pages(spec: &mut Value) {
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|_, item| {
            !item.as_object().is_some_and(|ops| {
                ops.values().any(|op| {
                    op["responses"].as_object().is_some_and(|r| {
                        r.values().any(|r| r["content"].get("text/html").is_some())
                    })
                })
            })
        });
    }
}

fn drop_bodyless_errors(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
            responses.retain(|code, response| {
                !(code.starts_with('4') || code.starts_with('5'))
                    || response.get("content").is_some()
            });
        }
    }
}

fn rename_problem_media_type(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(content) = obj.get_mut("content").and_then(Value::as_object_mut)
                && let Some(problem) = content.remove(crate::http::problem::CONTENT_TYPE)
            {
                content.entry("application/json").or_insert(problem);
            }
            obj.values_mut().for_each(rename_problem_media_type);
        }
        Value::Array(items) => items.iter_mut().for_each(rename_problem_media_type),
        _ => {}
    }
}

/// Rewrites every schema below `value`. `in_schema` tells whether `value` is one.
fn walk(value: &mut Value, in_schema: bool) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, in_schema)),
        Value::Object(obj) => {
            if in_schema {
                rewrite_schema(obj);
            }
            for (key, child) in obj.iter_mut() {
                let child_is_schema = match key.as_str() {
                    "schema" | "items" | "additionalProperties" | "not" => true,
                    "allOf" | "oneOf" | "anyOf" | "prefixItems" => true,
                    "properties" | "schemas" | "patternProperties" | "$defs" => {
                        // Maps of name -> schema.
                        if let Some(map) = child.as_object_mut() {
                            map.values_mut().for_each(|s| walk(s, true));
                        }
                        continue;
                    }
                    _ => false,
                };
                walk(child, child_is_schema || (in_schema && key == "items"));
            }
        }
        _ => {}
    }
}

fn rewrite_schema(obj: &mut Map<String, Value>) {
    // type: [T, "null"] -> type: T, nullable
    if let Some(Value::Array(types)) = obj.get("type").cloned() {
        let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if non_null.len() < types.len() {
            obj.insert("nullable".into(), json!(true));
        }
        match non_null.as_slice() {
            [one] => {
                obj.insert("type".into(), one.clone());
            }
            [] => {
                obj.remove("type");
            }
            _ => {
                obj.remove("type");
                obj.insert(
                    "anyOf".into(),
                    Value::Array(non_null.into_iter().map(|t| json!({ "type": t })).collect()),
                );
            }
        }
    }
    // oneOf/anyOf [X, {type: null}] -> allOf [X], nullable
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(variants)) = obj.get(key).cloned() {
            let is_null = |v: &Value| v.get("type") == Some(&json!("null"));
            if variants.iter().any(is_null) {
                let rest: Vec<Value> = variants.into_iter().filter(|v| !is_null(v)).collect();
                obj.remove(key);
                obj.insert("nullable".into(), json!(true));
                if rest.len() == 1 {
                    obj.insert("allOf".into(), Value::Array(rest));
                } else {
                    obj.insert(key.into(), Value::Array(rest));
                }
            }
        }
    }
    // $ref with siblings -> allOf [$ref] + siblings
    if obj.contains_key("$ref") && obj.len() > 1 {
        let reference = obj.remove("$ref").expect("checked");
        obj.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
    if let Some(Value::Array(mut examples)) = obj.remove("examples")
        && !examples.is_empty()
    {
        obj.insert("example".into(), examples.swap_remove(0));
    }
    if let Some(c) = obj.remove("const") {
        obj.insert("enum".into(), json!([c]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_types_and_refs() {
        let spec = json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1", "license": { "name": "x", "identifier": "x" } },
            "components": { "schemas": { "A": {
                "type": "object",
                "properties": {
                    "n": { "type": ["string", "null"], "format": "date" },
                    "r": { "oneOf": [ { "type": "null" }, { "$ref": "#/components/schemas/B" } ] },
                    "d": { "$ref": "#/components/schemas/B", "description": "doc" },
                    "l": { "type": "array", "items": { "type": ["integer", "null"] } },
                    "c": { "const": "x", "examples": ["x"] }
                }
            } } },
            "paths": { "/a": { "get": { "responses": { "200": { "content": { "application/json": {
                "schema": { "type": ["object", "null"] } } } } } } } }
        });
        let out = downgrade_to_30(spec);
        assert_eq!(out["openapi"], "3.0.3");
        assert!(out["info"]["license"].get("identifier").is_none());
        let p = &out["components"]["schemas"]["A"]["properties"];
        assert_eq!(
            p["n"],
            json!({ "type": "string", "format": "date", "nullable": true })
        );
        assert_eq!(
            p["r"],
            json!({ "allOf": [{ "$ref": "#/components/schemas/B" }], "nullable": true })
        );
        assert_eq!(
            p["d"],
            json!({ "allOf": [{ "$ref": "#/components/schemas/B" }], "description": "doc" })
        );
        assert_eq!(
            p["l"]["items"],
            json!({ "type": "integer", "nullable": true })
        );
        assert_eq!(p["c"], json!({ "enum": ["x"], "example": "x" }));
        let s =
            &out["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(s, &json!({ "type": "object", "nullable": true }));
    }

    #[test]
    fn the_generated_30_spec_has_no_31_constructs() {
        let text = spec_30_json();
        assert!(text.contains("\"openapi\": \"3.0.3\""));
        assert!(!text.contains("\"null\""), "no null types remain");
        assert!(!text.contains("\"const\""));
        assert!(
            !text.contains("application/problem+json"),
            "generators see problems as JSON"
        );
        assert!(
            !text.contains("\"431\""),
            "no body-less error answers (progenitor types one error body)"
        );
    }
}
