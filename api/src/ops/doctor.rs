//! `inboxlink doctor`: checks a deployment without changing it. The
//! configuration (public URL, JWT key, extra CA, master keys, that secret
//! files are private to their owner), the database
//! (reachable, migrations up to date), the clock (sane, and for PostgreSQL
//! close to the database's), and that every encrypted value decrypts with the
//! configured keys, counted per key id. Failures name the table, column and
//! row, never a value. The checks that need no database are in `config`,
//! the report and its printing in `report`.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};

use super::{PAGE, SecretFailure, slot};

mod config;
mod report;

use crate::config::{Backend, Settings};
use crate::crypto::Cipher;
use crate::store::Store;
use crate::store::operations::{self, SecretColumn};
pub use report::{ColumnSummary, Finding, Level, Report};

/// The earliest time a sane system clock can show.
const SANE_AFTER: NaiveDate = NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date");
/// The largest difference between this machine's and the database's clock.
const MAX_SKEW_SECONDS: f64 = 60.0;

/// Everything: the configuration, then connects to the database and checks it.
pub async fn diagnose(settings: &Settings) -> Report {
    let mut report = Report::default();
    config::check_config(settings, &mut report);
    config::check_file_modes(settings, &mut report);
    let db = settings.database.clone_settings();
    #[expect(clippy::disallowed_methods, reason = "connecting: no Store yet")]
    let store = tokio::task::spawn_blocking(move || Store::connect(&db)).await;
    let store = match store {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            report.push(Level::Fail, "database", format!("not reachable: {e:#}"));
            return report;
        }
        Err(e) => {
            report.push(Level::Fail, "database", format!("cannot connect: {e}"));
            return report;
        }
    };
    let cipher = Cipher::new(&settings.master_keys);
    let data = diagnose_store(&store, &cipher).await;
    report.findings.extend(data.findings);
    report.secrets = data.secrets;
    report.secret_failures = data.secret_failures;
    report
}

/// The database, the clock and the encrypted values, over a connected store.
pub async fn diagnose_store(store: &Store, cipher: &Cipher) -> Report {
    let mut report = Report::default();
    let backend = match store.backend() {
        Backend::Postgres => "PostgreSQL",
        Backend::Sqlite => "SQLite",
    };
    if let Err(e) = store.ping().await {
        report.push(
            Level::Fail,
            "database",
            format!("{backend} does not answer: {e}"),
        );
        return report;
    }
    report.push(Level::Ok, "database", format!("{backend} answers"));

    // `migration_status` checks out its own connection (diesel's migration
    // harness): blocking, once per command.
    #[expect(clippy::disallowed_methods, reason = "Store's own blocking method")]
    let status = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.migration_status()).await
    };
    let migrated = match status {
        Ok(Ok(status)) => {
            if !status.unknown.is_empty() {
                report.push(
                    Level::Warn,
                    "migrations",
                    format!(
                        "the database has migrations this version does not know ({}): a newer version migrated it",
                        status.unknown.join(", ")
                    ),
                );
            }
            if status.pending.is_empty() {
                report.push(
                    Level::Ok,
                    "migrations",
                    format!("up to date ({} applied)", status.applied),
                );
                true
            } else {
                report.push(
                    Level::Fail,
                    "migrations",
                    format!(
                        "{} pending ({}): run `inboxlink migrate` (serve applies them at start-up)",
                        status.pending.len(),
                        status.pending.join(", ")
                    ),
                );
                false
            }
        }
        Ok(Err(e)) => {
            report.push(Level::Fail, "migrations", format!("{e:#}"));
            false
        }
        Err(e) => {
            report.push(Level::Fail, "migrations", e.to_string());
            false
        }
    };

    check_clock(store, &mut report).await;

    if migrated {
        check_secrets(store, cipher, &mut report).await;
        check_addresses(store, &mut report).await;
    } else {
        report.push(
            Level::Warn,
            "encrypted values",
            "not checked: the schema is not up to date",
        );
    }
    report
}

/// Mailbox addresses the strict parse refuses (stored by an older version).
async fn check_addresses(store: &Store, report: &mut Report) {
    let found = store.run(crate::store::addresses::find_invalid).await;
    match found {
        Ok(invalid) if invalid.is_empty() => report.push(
            Level::Ok,
            "mailbox addresses",
            "every stored address is valid",
        ),
        Ok(invalid) => {
            for m in &invalid {
                report.push(
                    Level::Warn,
                    "mailbox addresses",
                    format!(
                        "mailbox {} of organisation {:?}: the stored address is not a bare mailbox address; correct it with PATCH /mailboxes/{}",
                        m.mailbox_id, m.org, m.mailbox_id
                    ),
                );
            }
        }
        Err(e) => report.push(Level::Fail, "mailbox addresses", e.to_string()),
    }
}

async fn check_clock(store: &Store, report: &mut Report) {
    let local = Utc::now().naive_utc();
    if local.date() < SANE_AFTER {
        report.push(
            Level::Fail,
            "clock",
            format!(
                "the system clock shows {} UTC, before {SANE_AFTER}: set the time (NTP)",
                local.format("%Y-%m-%d %H:%M:%S")
            ),
        );
        return;
    }
    match store.run(operations::database_now).await {
        Ok(Some(db_now)) => {
            let after = Utc::now().naive_utc();
            // The query ran between `local` and `after`: compare with the middle.
            let mid = local + (after - local) / 2;
            let skew = (db_now - mid).as_seconds_f64();
            if skew.abs() > MAX_SKEW_SECONDS {
                report.push(
                    Level::Fail,
                    "clock",
                    format!(
                        "this machine's clock is {:.0} s {} the database's: token expiry and JWT checks go wrong; synchronise both (NTP)",
                        skew.abs(),
                        if skew > 0.0 { "behind" } else { "ahead of" }
                    ),
                );
            } else {
                report.push(
                    Level::Ok,
                    "clock",
                    format!(
                        "{} UTC, within {:.1} s of the database",
                        local.format("%Y-%m-%d %H:%M:%S"),
                        skew.abs()
                    ),
                );
            }
        }
        Ok(None) => report.push(
            Level::Ok,
            "clock",
            format!("{} UTC", local.format("%Y-%m-%d %H:%M:%S")),
        ),
        Err(e) => report.push(
            Level::Fail,
            "clock",
            format!("cannot read the database's clock: {e}"),
        ),
    }
}

/// Decrypts every stored value of every encrypted column.
async fn check_secrets(store: &Store, cipher: &Cipher, report: &mut Report) {
    let current = cipher.current_key_id().to_owned();
    let mut older = 0usize;
    for column in SecretColumn::ALL {
        let topic = format!("{}.{}", column.table(), column.column());
        let mut summary = ColumnSummary {
            column,
            values: 0,
            by_key: BTreeMap::new(),
            failed: 0,
        };
        let mut after: Option<String> = None;
        let mut error = None;
        loop {
            let from = after.clone();
            let page = store
                .run(move |c| operations::secret_page(c, column, from.as_deref(), PAGE))
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            for (row_id, stored) in &page {
                summary.values += 1;
                let key = Cipher::key_id_of(stored).unwrap_or("malformed");
                *summary.by_key.entry(key.to_owned()).or_default() += 1;
                if key != current {
                    older += 1;
                }
                if let Err(e) = cipher.decrypt(stored, slot(column, row_id)) {
                    summary.failed += 1;
                    report.secret_failures.push(SecretFailure {
                        table: column.table(),
                        column: column.column(),
                        row_id: row_id.clone(),
                        reason: e.to_string(),
                    });
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            after = page.last().map(|(id, _)| id.clone());
        }
        let keys = summary
            .by_key
            .iter()
            .map(|(k, n)| format!("key {k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!(" ({keys})")
        };
        match error {
            Some(e) => report.push(Level::Fail, &topic, format!("cannot read: {e}")),
            None if summary.failed > 0 => report.push(
                Level::Fail,
                &topic,
                format!(
                    "{} of {} values do not decrypt{keys}",
                    summary.failed, summary.values
                ),
            ),
            None => report.push(
                Level::Ok,
                &topic,
                format!("{} values decrypt{keys}", summary.values),
            ),
        }
        report.secrets.push(summary);
    }
    if older > 0 {
        report.push(
            Level::Warn,
            "master keys",
            format!(
                "{older} values are encrypted with an older key: run `inboxlink rekey` before removing it"
            ),
        );
    }
}
