//! The README's code lists are the code catalogue's (`api/src/codes.rs`):
//! each list between `<!-- codes: <use> -->` and `<!-- /codes -->` names
//! exactly the codes of that use, and the error table gives each problem
//! code its HTTP status.

use std::collections::BTreeSet;

use inboxlink::codes::{Code, Use};

fn readme() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(path).expect("README.md")
}

/// The text of the marked list for `name`.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let open = format!("<!-- codes: {name} -->");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("README has no `{open}`"))
        + open.len();
    let end = start
        + text[start..]
            .find("<!-- /codes -->")
            .expect("a closing marker");
    &text[start..end]
}

/// The backticked words of `text` that look like codes.
fn codes_in(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// The cells of column `n` of a Markdown table (header and rule skipped).
fn column(table: &str, n: usize) -> Vec<String> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.split('|')
                .nth(n + 1)
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect()
}

/// The heads (before `: `) of a Markdown list's items.
fn item_heads(list: &str) -> String {
    list.split("\n- ")
        .map(|item| item.split(": ").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

fn catalogue(use_: Use) -> BTreeSet<String> {
    Code::of(use_).map(|c| c.as_str().to_owned()).collect()
}

#[test]
fn the_readme_lists_the_catalogue() {
    let text = readme();
    let check = codes_in(&column(section(&text, "check"), 0).join(" "));
    assert_eq!(check, catalogue(Use::Check), "check codes");
    assert_eq!(
        codes_in(&item_heads(section(&text, "detail"))),
        catalogue(Use::Detail),
        "status detail codes"
    );
    assert_eq!(
        codes_in(&item_heads(section(&text, "delivery"))),
        catalogue(Use::Delivery),
        "delivery codes"
    );
    assert_eq!(
        codes_in(section(&text, "field")),
        catalogue(Use::Field),
        "field codes"
    );
    assert_eq!(
        codes_in(section(&text, "outcome")),
        catalogue(Use::Outcome),
        "callback outcomes"
    );
    let problems = section(&text, "problem");
    let mut listed = BTreeSet::new();
    for (status, codes) in column(problems, 0).into_iter().zip(column(problems, 1)) {
        for code in codes_in(&codes) {
            let known = Code::parse(&code).unwrap_or_else(|| panic!("`{code}` is no code"));
            assert_eq!(known.status().to_string(), status, "the status of `{code}`");
            listed.insert(code);
        }
    }
    assert_eq!(listed, catalogue(Use::Problem), "problem codes");
}
