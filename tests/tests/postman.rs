//! The Postman collection against the spec: every operation of
//! `openapi/inboxlink.json` (read at run time) has a request, every request
//! tests its status, names follow the convention the checks rely on, and
//! every variable the collection uses is defined. Also: the sandbox starts
//! (without Dovecot) and writes an environment whose tokens the service accepts.
//!
//! Request names start with the operationId (`mailbox_create: …`) or, for
//! what is not an operation, with the method and path (`GET /openapi.json: …`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use inboxlink_tests::sandbox::{self, ENVIRONMENT_KEYS, Options, Sandbox};
use serde_json::Value;

const SCHEMA: &str = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn read_json(relative: &str) -> Value {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn collection() -> Value {
    read_json("postman/inboxlink.postman_collection.json")
}

/// An operation of the spec.
#[derive(Debug)]
struct Operation {
    method: String,
    path: String,
    tag: String,
}

/// operationId -> operation, from the committed spec.
fn operations() -> BTreeMap<String, Operation> {
    let spec = read_json("openapi/inboxlink.json");
    let mut ops = BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            ops.insert(
                id.to_owned(),
                Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    tag: op["tags"][0].as_str().unwrap_or_default().to_owned(),
                },
            );
        }
    }
    assert!(!ops.is_empty(), "the spec has operations");
    ops
}

/// A request of the collection, with the top-level folder it is in.
struct Request<'a> {
    folder: String,
    name: String,
    item: &'a Value,
}

impl Request<'_> {
    fn method(&self) -> &str {
        self.item["request"]["method"].as_str().unwrap_or("GET")
    }

    fn raw_url(&self) -> &str {
        match &self.item["request"]["url"] {
            Value::String(s) => s,
            url => url["raw"].as_str().unwrap_or_default(),
        }
    }

    /// The path after `{{baseUrl}}`, without the query; `None` for other URLs.
    fn api_path(&self) -> Option<&str> {
        let rest = self.raw_url().strip_prefix("{{baseUrl}}")?;
        Some(rest.split('?').next().unwrap_or_default())
    }

    /// The operationId or `METHOD /path` the name starts with.
    fn subject(&self) -> &str {
        self.name
            .split_once(": ")
            .map_or(self.name.as_str(), |(s, _)| s)
    }

    fn test_script(&self) -> String {
        self.item["event"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["listen"] == "test")
            .flat_map(|e| match &e["script"]["exec"] {
                Value::Array(lines) => lines
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn requests(collection: &Value) -> Vec<Request<'_>> {
    fn walk<'a>(items: &'a Value, folder: &str, out: &mut Vec<Request<'a>>) {
        for item in items.as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default().to_owned();
            if item.get("item").is_some() {
                let top = if folder.is_empty() { &name } else { folder };
                walk(&item["item"], top, out);
            } else {
                out.push(Request {
                    folder: folder.to_owned(),
                    name,
                    item,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(&collection["item"], "", &mut out);
    assert!(!out.is_empty(), "the collection has requests");
    out
}

/// Whether a collection path (`/mailboxes/{{mailboxId}}/check`) fills in a
/// spec path (`/mailboxes/{id}/check`).
fn path_matches(spec: &str, actual: &str) -> bool {
    let spec: Vec<&str> = spec.split('/').collect();
    let actual: Vec<&str> = actual.split('/').collect();
    spec.len() == actual.len()
        && spec
            .iter()
            .zip(&actual)
            .all(|(s, a)| (s.starts_with('{') && s.ends_with('}') && !a.is_empty()) || s == a)
}

#[test]
fn every_operation_in_the_spec_has_a_request() {
    let collection = collection();
    let requests = requests(&collection);
    let mut problems = Vec::new();
    for (id, op) in operations() {
        let named: Vec<&Request<'_>> = requests.iter().filter(|r| r.subject() == id).collect();
        if named.is_empty() {
            problems.push(format!(
                "{id} ({} {}): no request named `{id}: …` in the collection",
                op.method, op.path
            ));
            continue;
        }
        let sent = named.iter().any(|r| {
            r.method() == op.method && r.api_path().is_some_and(|p| path_matches(&op.path, p))
        });
        if !sent {
            problems.push(format!(
                "{id}: no request named after it sends {} {{{{baseUrl}}}}{}",
                op.method, op.path
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "postman/inboxlink.postman_collection.json misses operations of openapi/inboxlink.json:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_request_has_a_test_script_asserting_the_status() {
    let collection = collection();
    let mut problems = Vec::new();
    for r in requests(&collection) {
        let script = r.test_script();
        if script.trim().is_empty() {
            problems.push(format!("{}: no test script", r.name));
        } else if !script.contains("pm.response.to.have.status(")
            && !script.contains("pm.expect(pm.response.code)")
        {
            problems.push(format!(
                "{}: the test script asserts no status (pm.response.to.have.status(…))",
                r.name
            ));
        } else if !script.contains("pm.test(") {
            problems.push(format!("{}: no pm.test(…) in the test script", r.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn request_names_start_with_an_operation_id_or_a_method_and_path() {
    let ops = operations();
    let collection = collection();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for r in requests(&collection) {
        if !seen.insert(r.name.clone()) {
            problems.push(format!("{}: the name is used twice", r.name));
        }
        let subject = r.subject();
        if let Some((method, path)) = subject.split_once(' ') {
            let known_method = METHODS.contains(&method.to_lowercase().as_str())
                && method == method.to_uppercase();
            if !known_method || !path.starts_with('/') || r.method() != method {
                problems.push(format!(
                    "{}: expected `operation_id: …` or `{} /path: …`",
                    r.name,
                    r.method()
                ));
            }
            // What became an operation is named after it.
            if let Some((id, _)) = ops
                .iter()
                .find(|(_, op)| op.method == method && path_matches(&op.path, path))
            {
                problems.push(format!(
                    "{}: {method} {path} is the operation `{id}` now: name the request `{id}: …`",
                    r.name
                ));
            }
            continue;
        }
        let Some(op) = ops.get(subject) else {
            problems.push(format!(
                "{}: `{subject}` is not an operationId of openapi/inboxlink.json",
                r.name
            ));
            continue;
        };
        // Folders are the spec's tags, in the order of the walk ("mailboxes · after sign-in").
        let folder_tag = r.folder.split(" · ").next().unwrap_or_default();
        if folder_tag != op.tag {
            problems.push(format!(
                "{}: in the folder `{}`, but {subject} has the tag `{}`",
                r.name, r.folder, op.tag
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn collection_format_auth_and_folders() {
    let collection = collection();
    assert_eq!(
        collection["info"]["schema"], SCHEMA,
        "collection format v2.1"
    );
    let auth = &collection["auth"];
    assert_eq!(auth["type"], "bearer", "bearer auth for the collection");
    let token = auth["bearer"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["key"] == "token"))
        .expect("a bearer token entry");
    assert_eq!(token["value"], "{{token}}");

    let spec = read_json("openapi/inboxlink.json");
    let tags: BTreeSet<&str> = fields(&spec["tags"], "name").collect();
    for folder in collection["item"].as_array().expect("folders") {
        let name = folder["name"].as_str().unwrap_or_default();
        assert!(
            folder.get("item").is_some(),
            "top-level items are folders: {name}"
        );
        let tag = name.split(" · ").next().unwrap_or_default();
        assert!(
            tags.contains(tag),
            "folder `{name}` is not named after a tag of the spec ({tags:?})"
        );
    }
}

/// The string `field` of every object in the array `items`.
fn fields<'a>(items: &'a Value, field: &'a str) -> impl Iterator<Item = &'a str> {
    let items = items.as_array().expect("an array");
    items.iter().filter_map(move |item| item[field].as_str())
}

/// `{{name}}` references in a text (Postman's dynamic `{{$guid}}` excluded).
fn variables_used(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        let name = &rest[..end];
        if !name.starts_with('$') && !name.is_empty() {
            found.insert(name.to_owned());
        }
        rest = &rest[end + 2..];
    }
    found
}

#[test]
fn every_variable_is_defined_and_the_environment_matches_the_sandbox() {
    let collection = collection();
    let variables = fields(&collection["variable"], "key");
    let mut defined: BTreeSet<String> = variables.map(str::to_owned).collect();
    let environment = read_json("postman/inboxlink.postman_environment.json");
    let env_keys: Vec<&str> = fields(&environment["values"], "key").collect();
    assert_eq!(
        env_keys, ENVIRONMENT_KEYS,
        "postman/inboxlink.postman_environment.json has the keys the sandbox writes"
    );
    let committed: BTreeMap<&str, &str> = environment["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["key"].as_str()?, v["value"].as_str()?)))
        .collect();
    for (key, sandbox_value) in [
        ("org", sandbox::ORG),
        ("tenantId", sandbox::TENANT_ID),
        ("clientId", sandbox::CLIENT_ID),
        ("clientSecret", sandbox::CLIENT_SECRET),
        ("mailbox", sandbox::MAILBOXES[0]),
        ("mailServers", "dovecot"),
        ("baseUrl", "http://127.0.0.1:8080"),
    ] {
        assert_eq!(
            committed.get(key).copied(),
            Some(sandbox_value),
            "the committed environment's {key} is the sandbox's"
        );
    }
    defined.extend(ENVIRONMENT_KEYS.iter().map(|k| (*k).to_owned()));
    let text = serde_json::to_string(&collection).expect("serialise");
    let undefined: Vec<String> = variables_used(&text)
        .into_iter()
        .filter(|v| !defined.contains(v))
        .collect();
    assert!(
        undefined.is_empty(),
        "variables used but neither collection variables nor environment keys: {undefined:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_writes_an_environment_the_service_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("env.json");
    let options = Options {
        port: 0,
        mail: false,
        env_file: Some(env_file.clone()),
        log: Some("error".into()),
        ..Options::default()
    };
    let sandbox = Sandbox::start(&options).await.expect("the sandbox starts");
    let banner = sandbox.banner();
    assert!(banner.contains("SANDBOX — fake Microsoft sign-in, not for production"));
    assert!(banner.contains(sandbox::CLIENT_SECRET) && banner.contains(sandbox::TENANT_ID));
    assert!(banner.contains(&env_file.display().to_string()));

    let env: Value =
        serde_json::from_str(&std::fs::read_to_string(&env_file).expect("the environment file"))
            .expect("JSON");
    let values: BTreeMap<&str, &str> = env["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| Some((v["key"].as_str()?, v["value"].as_str()?)))
        .collect();
    assert_eq!(
        values.keys().copied().collect::<BTreeSet<_>>(),
        ENVIRONMENT_KEYS.into_iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(values["baseUrl"], sandbox.base_url());
    assert_eq!(values["mailServers"], "none");
    assert_eq!(values["org"], sandbox::ORG);

    let status = async |path: &str, token: &str| {
        let url = format!("{}{path}", values["baseUrl"]);
        let request = reqwest::Client::new().get(url).bearer_auth(values[token]);
        let response = request.send().await.expect("the service answers");
        response.status().as_u16()
    };
    for (role, expected) in [
        ("adminToken", 200),
        ("viewerToken", 200),
        ("serviceToken", 403),
    ] {
        assert_eq!(status("/app-credentials", role).await, expected, "{role}");
    }
    // The metrics answer to the printed metrics token only.
    assert_eq!(values["metricsToken"], sandbox.metrics_token());
    assert!(banner.contains(sandbox.metrics_token()));
    for (token, expected) in [("metricsToken", 200), ("adminToken", 401)] {
        assert_eq!(status("/metrics", token).await, expected, "{token}");
    }

    // A webhook may point at the sandbox's receiver (http://127.0.0.1:…),
    // and its test event arrives there, signed with the webhook's secret.
    assert_eq!(values["receiverUrl"], sandbox.receiver_url());
    assert!(banner.contains(&sandbox.receiver_url()));
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/webhooks", values["baseUrl"]))
        .bearer_auth(values["adminToken"])
        .json(&serde_json::json!({ "url": values["receiverUrl"] }))
        .send()
        .await
        .expect("the service answers")
        .error_for_status()
        .expect("201: the sandbox allows a local receiver")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_str().expect("an id");
    let secret = created["secret"].as_str().expect("a secret");
    let queued: Value = http
        .post(format!("{}/webhooks/{id}/test", values["baseUrl"]))
        .bearer_auth(values["adminToken"])
        .send()
        .await
        .expect("the service answers")
        .error_for_status()
        .expect("202")
        .json()
        .await
        .expect("JSON");
    let got = sandbox
        .receiver()
        .wait_for(
            sandbox::RECEIVER_PATH,
            1,
            std::time::Duration::from_secs(10),
        )
        .await;
    let delivery = got.first().expect("the test event reaches the receiver");
    let event = inboxlink_sdk::webhooks::verify_pairs(
        secret,
        delivery
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
        &delivery.body,
    )
    .expect("signed with the webhook's secret");
    assert_eq!(event.event_type, "webhook.test");
    assert_eq!(event.id, queued["event_id"].as_str().expect("an event id"));
    assert_eq!(event.data["webhook_id"], id);
    sandbox.stop();
}

/// Tokens printed for longer than the service's default lifetime bound (a
/// day) are accepted: the sandbox raises its service's bound to `--token-ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_accepts_its_long_lived_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--token-ttl", "720", "--port", "0", "--no-mail"];
    let mut options = sandbox::parse_args(args.map(String::from))
        .expect("valid options")
        .expect("not --help");
    options.env_file = Some(dir.path().join("env.json"));
    options.log = Some("error".into());
    let sandbox = Sandbox::start(&options).await.expect("the sandbox starts");
    let response = reqwest::Client::new()
        .get(format!("{}/mailboxes", sandbox.base_url()))
        .bearer_auth(&sandbox.tokens().admin)
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status().as_u16(), 200, "a 30-day token");
    sandbox.stop();
}
