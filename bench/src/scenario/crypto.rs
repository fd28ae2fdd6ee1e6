//! Encryption per value, read from criterion's estimates.

use serde_json::Value;

use crate::Args;
use crate::table::{Goal, Table};

/// Part 5 of the issue: encryption per value, from criterion's estimates (`cargo bench --bench crypto`).
pub fn crypto(a: &Args, t: &mut Table) {
    for (name, label, goal) in [
        ("encrypt_token_1500", "encrypt a 1.5 KB token", None),
        (
            "decrypt_token_1500",
            "decrypt a 1.5 KB token",
            Some(Goal::AtMost(5.0)),
        ),
        ("encrypt_secret_40", "encrypt a 40-byte client secret", None),
        (
            "decrypt_secret_40",
            "decrypt a 40-byte client secret",
            Some(Goal::AtMost(5.0)),
        ),
    ] {
        let path = a.criterion.join(name).join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!(
                "  {} is missing: run cargo bench -p inboxlink --bench crypto",
                path.display()
            );
            continue;
        };
        let estimates: Value = serde_json::from_str(&text).expect("criterion estimates");
        let us = estimates["median"]["point_estimate"]
            .as_f64()
            .expect("median")
            / 1000.0;
        match goal {
            Some(g) => t.goal(
                "crypto (criterion)",
                format!("{label}, median"),
                us,
                "us",
                g,
            ),
            None => t.add("crypto (criterion)", format!("{label}, median"), us, "us"),
        }
    }
}
