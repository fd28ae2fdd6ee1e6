//! Operator commands over the store and the cipher, outside of any request:
//! [`doctor`] (is this deployment healthy?) and [`rekey`] (move every
//! encrypted value to the newest master key). The CLI only prints their reports.
//! [`file_modes`]: are the secret files private (doctor, and `serve` at start-up)?

pub mod doctor;
pub mod file_modes;
pub mod rekey;

use crate::crypto::Slot;
use crate::store::operations::SecretColumn;

/// Values read per query when walking an encrypted column.
const PAGE: i64 = 200;

/// Where a value of `column` in row `row_id` is stored, as the services encrypt it.
fn slot(column: SecretColumn, row_id: &str) -> Slot<'_> {
    Slot {
        table: column.table(),
        column: column.column(),
        row_id,
    }
}

/// A stored value that does not decrypt: where it is and why, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFailure {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: String,
    pub reason: String,
}

impl std::fmt::Display for SecretFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} row {}: {}",
            self.table, self.column, self.row_id, self.reason
        )
    }
}
