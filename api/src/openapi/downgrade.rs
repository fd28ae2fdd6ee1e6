//! The 3.0 form of the spec, for the SDK generator (progenitor reads 3.0
//! only): [`downgrade_to_30`] rewrites what 3.1 has and 3.0 lacks, and leaves
//! out what a typed client has no use for.

use serde_json::{Map, Value, json};

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
        let text = crate::openapi::spec_30_json();
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
