//! `inboxlink rekey`: re-encrypts every stored value that is not under the
//! newest master key (the first of `INBOXLINK_MASTER_KEY`) with that key.
//!
//! Row by row: each value is written with one conditional `UPDATE … WHERE id
//! = ? AND column = <the ciphertext read>`, its own transaction, so a value a
//! running instance stored meanwhile (a refreshed token) is never overwritten;
//! it is counted as changed and left to the next run. A value that does not
//! decrypt is reported and left alone. Running it again finds nothing to do.

use std::collections::BTreeMap;

use super::{PAGE, SecretFailure, slot};
use crate::crypto::Cipher;
use crate::store::Store;
use crate::store::operations::{self, SecretColumn};

/// What happened to the values of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnCounts {
    /// Values stored (non-null).
    pub values: usize,
    /// Already under the newest key.
    pub current: usize,
    /// Re-encrypted with the newest key.
    pub rekeyed: usize,
    /// Changed by someone else between the read and the write: left alone.
    pub changed_meanwhile: usize,
    /// Do not decrypt: left alone (see [`RekeyReport::failures`]).
    pub failed: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RekeyReport {
    /// The newest key, which every value should be under.
    pub key_id: String,
    pub columns: BTreeMap<SecretColumn, ColumnCounts>,
    pub failures: Vec<SecretFailure>,
}

impl RekeyReport {
    /// Sums over the columns.
    pub fn total(&self) -> ColumnCounts {
        self.columns
            .values()
            .fold(ColumnCounts::default(), |mut sum, c| {
                sum.values += c.values;
                sum.current += c.current;
                sum.rekeyed += c.rekeyed;
                sum.changed_meanwhile += c.changed_meanwhile;
                sum.failed += c.failed;
                sum
            })
    }

    /// Whether every value is under the newest key now.
    pub fn complete(&self) -> bool {
        let total = self.total();
        total.changed_meanwhile == 0 && total.failed == 0
    }
}

impl std::fmt::Display for RekeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "newest key: {}", self.key_id)?;
        for (column, c) in &self.columns {
            writeln!(
                f,
                "{}.{}: {} values, {} re-encrypted, {} already current, {} changed meanwhile, {} do not decrypt",
                column.table(),
                column.column(),
                c.values,
                c.rekeyed,
                c.current,
                c.changed_meanwhile,
                c.failed
            )?;
        }
        for failure in &self.failures {
            writeln!(f, "  not re-encrypted: {failure}")?;
        }
        let t = self.total();
        write!(
            f,
            "rekey: {} re-encrypted, {} already current, {} changed meanwhile, {} do not decrypt",
            t.rekeyed, t.current, t.changed_meanwhile, t.failed
        )?;
        if t.changed_meanwhile > 0 {
            write!(f, " (run rekey again)")?;
        }
        Ok(())
    }
}

/// Re-encrypts everything not under `cipher`'s newest key. Refuses to run on
/// a schema that is not up to date.
pub async fn rekey(store: &Store, cipher: &Cipher) -> anyhow::Result<RekeyReport> {
    // `migration_status` checks out its own connection (diesel's migration
    // harness): blocking, once per command.
    #[expect(clippy::disallowed_methods, reason = "Store's own blocking method")]
    let status = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.migration_status()).await??
    };
    if !status.pending.is_empty() {
        anyhow::bail!(
            "{} migration(s) pending: run `inboxlink migrate` first",
            status.pending.len()
        );
    }
    let current = cipher.current_key_id().to_owned();
    let mut report = RekeyReport {
        key_id: current.clone(),
        ..Default::default()
    };
    for column in SecretColumn::ALL {
        let mut counts = ColumnCounts::default();
        let mut after: Option<String> = None;
        loop {
            let from = after.clone();
            let page = store
                .run(move |c| operations::secret_page(c, column, from.as_deref(), PAGE))
                .await?;
            let mut writes: Vec<(String, String, String)> = Vec::new();
            for (row_id, stored) in &page {
                counts.values += 1;
                if Cipher::key_id_of(stored) == Some(current.as_str()) {
                    counts.current += 1;
                    continue;
                }
                match cipher.decrypt(stored, slot(column, row_id)) {
                    Ok(plain) => {
                        use secrecy::ExposeSecret;
                        let sealed = cipher.encrypt(plain.expose_secret(), slot(column, row_id));
                        writes.push((row_id.clone(), stored.clone(), sealed));
                    }
                    Err(e) => {
                        counts.failed += 1;
                        tracing::warn!(
                            table = column.table(),
                            column = column.column(),
                            row_id = %row_id,
                            error = %e,
                            "a stored value does not decrypt; left as it is"
                        );
                        report.failures.push(SecretFailure {
                            table: column.table(),
                            column: column.column(),
                            row_id: row_id.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            if !writes.is_empty() {
                // Each UPDATE is a statement of its own (autocommit): its own
                // small transaction, guarded by the ciphertext read.
                let replaced = store
                    .run(move |c| {
                        writes
                            .iter()
                            .map(|(id, old, new)| {
                                operations::replace_secret(c, column, id, old, new)
                            })
                            .collect::<Result<Vec<bool>, _>>()
                    })
                    .await?;
                for done in replaced {
                    if done {
                        counts.rekeyed += 1;
                    } else {
                        counts.changed_meanwhile += 1;
                    }
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            after = page.last().map(|(id, _)| id.clone());
        }
        report.columns.insert(column, counts);
    }
    Ok(report)
}
