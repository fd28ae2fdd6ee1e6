//! The README's section on events and webhooks against the service: one
//! example body per event type (between `<!-- events -->` and
//! `<!-- /events -->`), the example delivery's signature as the service's
//! signer makes it, and its Python verifier the one in
//! `docs/verify_webhook.py` (the command a receiver can run).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use inboxlink::domain::EventType;
use inboxlink::hooks::signing;
use secrecy::SecretString;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The text between two markers.
fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("README has no `{open}`"))
        + open.len();
    let end = start + text[start..].find(close).expect("a closing marker");
    &text[start..end]
}

/// The body of the first fenced block of `lang` after `from` in `text`.
fn block_after<'a>(text: &'a str, from: &str, lang: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("README has no `{from}`"));
    between(&text[start..], &format!("```{lang}\n"), "```")
}

/// The example bodies, one per line.
fn example_bodies(text: &str) -> Vec<&str> {
    let block = between(text, "<!-- events -->", "<!-- /events -->");
    between(block, "```json\n", "```").lines().collect()
}

#[test]
fn one_example_body_per_event_type() {
    let text = readme();
    let mut types = Vec::new();
    for line in example_bodies(&text) {
        let body: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let keys: BTreeSet<&str> = body
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["type", "timestamp", "data"]),
            "{line}"
        );
        let t = body["type"].as_str().expect("a type");
        assert!(EventType::parse(t).is_some(), "`{t}` is no event type");
        chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("a timestamp"))
            .unwrap_or_else(|e| panic!("{t}: the timestamp is not RFC 3339: {e}"));
        assert!(body["data"].is_object(), "{t}: data is an object");
        types.push(t.to_owned());
    }
    let all: Vec<String> = EventType::ALL.iter().map(|t| t.as_str().into()).collect();
    assert_eq!(types, all, "every type once, in the catalogue's order");
}

#[test]
fn the_example_delivery_is_signed_as_the_service_signs() {
    let text = readme();
    let section = &text[text.find("**A delivery**").expect("the delivery example")..];
    let secret = section
        .split('`')
        .find(|w| w.starts_with("whsec_"))
        .expect("the example secret");
    let http = block_after(section, "", "http");
    let header = |name: &str| {
        http.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("the example has no {name}"))
    };
    let body = http
        .split("\n\n")
        .nth(1)
        .expect("a body after the headers")
        .trim_end();
    let timestamp: i64 = header("webhook-timestamp").parse().expect("Unix seconds");
    let signed = signing::sign(
        &SecretString::from(secret.to_owned()),
        header("webhook-id"),
        timestamp,
        body.as_bytes(),
    );
    assert_eq!(signed.as_deref(), Some(header("webhook-signature")));
    let parsed: Value = serde_json::from_str(body).expect("a JSON body");
    assert!(
        example_bodies(&text)
            .iter()
            .any(|b| serde_json::from_str::<Value>(b).ok().as_ref() == Some(&parsed)),
        "the example delivery is one of the example bodies"
    );
}

#[test]
fn the_readme_python_verifier_is_docs_verify_webhook_py() {
    let text = readme();
    let snippet = block_after(&text, "**Verifying a signature.**", "python");
    let function = &snippet[snippet.find("def verify(").expect("the verify function")..];
    let file = std::fs::read_to_string(root().join("docs/verify_webhook.py"))
        .expect("docs/verify_webhook.py");
    assert!(
        file.contains(function),
        "docs/verify_webhook.py holds the README's `verify` verbatim"
    );
    for import in snippet.lines().filter(|l| l.starts_with("import ")) {
        assert!(file.contains(import), "docs/verify_webhook.py: {import}");
    }
}
