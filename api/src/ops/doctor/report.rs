//! What `doctor` found, and how it is printed: one line per finding, the
//! rows that do not decrypt under their column, the counts last.

use std::collections::BTreeMap;

use crate::ops::SecretFailure;
use crate::store::operations::SecretColumn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What was checked: `database`, `migrations`, `clock`, `public url`, …,
    /// or `table.column` for encrypted values.
    pub topic: String,
    pub message: String,
}

/// The encrypted values of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSummary {
    pub column: SecretColumn,
    /// Values stored (non-null).
    pub values: usize,
    /// Values per key id they name (`malformed` for values that name none).
    pub by_key: BTreeMap<String, usize>,
    /// Values that do not decrypt.
    pub failed: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Per encrypted column, when they were checked.
    pub secrets: Vec<ColumnSummary>,
    /// Every value that does not decrypt.
    pub secret_failures: Vec<SecretFailure>,
}

impl Report {
    pub(super) fn push(&mut self, level: Level, topic: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            topic: topic.to_owned(),
            message: message.into(),
        });
    }

    /// Whether anything failed (the command then exits with 1).
    pub fn failed(&self) -> bool {
        self.count(Level::Fail) > 0
    }

    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{:<4} {}: {}",
                finding.level.as_str(),
                finding.topic,
                finding.message
            )?;
            let table_column = |x: &SecretFailure| format!("{}.{}", x.table, x.column);
            if finding.level == Level::Fail {
                for failure in self
                    .secret_failures
                    .iter()
                    .filter(|x| table_column(x) == finding.topic)
                {
                    writeln!(f, "       row {}: {}", failure.row_id, failure.reason)?;
                }
            }
        }
        write!(
            f,
            "doctor: {} OK, {} WARN, {} FAIL",
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_failures_under_their_column() {
        let mut report = Report::default();
        report.push(Level::Ok, "database", "SQLite answers");
        report.push(
            Level::Fail,
            "app_credentials.client_secret",
            "1 of 2 values do not decrypt",
        );
        report.secret_failures.push(SecretFailure {
            table: "app_credentials",
            column: "client_secret",
            row_id: "r1".into(),
            reason: "tampered".into(),
        });
        let text = report.to_string();
        assert!(text.contains("OK   database: SQLite answers\n"), "{text}");
        assert!(
            text.contains(
                "FAIL app_credentials.client_secret: 1 of 2 values do not decrypt\n       row r1: tampered\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("doctor: 1 OK, 0 WARN, 1 FAIL"), "{text}");
        assert!(report.failed());
    }
}
