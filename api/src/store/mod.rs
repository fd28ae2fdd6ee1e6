//! Persistence: diesel over one [`AnyConnection`] (SQLite or PostgreSQL,
//! chosen from the URL scheme), pooled with r2d2. Blocking database work runs
//! on tokio's blocking pool through [`Store::run`], never on the async workers.
//!
//! Every query function takes the caller's [`OrgId`](crate::domain::OrgId):
//! another organisation's rows cannot be read or changed through this module.
//! The exceptions are named where they are: the OAuth callback's state lookup
//! and housekeeping of expired rows.

pub mod addresses;
pub mod app_credentials;
pub mod audit;
pub mod authorizations;
mod connection;
pub mod mailboxes;
pub mod operations;
pub mod schema;
pub mod tokens;

use std::time::Duration;

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

pub use connection::{AnyConnection, Manager};

use crate::config::{Backend, DatabaseSettings};
use crate::error::Error;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
/// Serialises migrations of several instances starting at once on PostgreSQL.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK: i64 = 0x1b0c_5117_0000_0001;

pub type Pool = r2d2::Pool<Manager>;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects once directly (so a failure reports the database's own error),
    /// then builds the pool.
    pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let manager = Manager::new(settings.backend, settings.url.expose_secret());
        if settings.backend == Backend::Sqlite
            && let Some(dir) = std::path::Path::new(settings.url.expose_secret()).parent()
            && !dir.as_os_str().is_empty()
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        drop(manager.establish()?);
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            // A PostgreSQL connection can be lost (a restart, a failover): test it
            // with `SELECT 1` before a request uses it. An SQLite file cannot.
            .test_on_check_out(settings.backend == Backend::Postgres)
            .connection_timeout(Duration::from_secs(10))
            .error_handler(Box::new(connection::LogErrors))
            .build(manager)?;
        Ok(Self {
            pool,
            backend: settings.backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; returns their names.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let conn: &mut AnyConnection = &mut conn;
        let applied = match conn {
            AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(names),
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .execute(c)?;
                let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(names);
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                    .execute(c)?;
                result
            }
        };
        let applied = applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        if applied
            .iter()
            .any(|v| v.replace('-', "") == addresses::STRICT_ADDRESSES_MIGRATION)
        {
            let marked = addresses::mark_invalid(conn)
                .map_err(|e| anyhow::anyhow!("checking the stored addresses failed: {e}"))?;
            for m in &marked {
                tracing::warn!(
                    org = %m.org,
                    mailbox_id = %m.mailbox_id,
                    stored = ?m.stored,
                    "a stored mailbox address is not valid; the mailbox is marked `invalid_address` until it is corrected"
                );
            }
            if !marked.is_empty() {
                tracing::warn!(
                    count = marked.len(),
                    "mailboxes with invalid stored addresses"
                );
            }
        }
        Ok(applied)
    }

    /// Which migrations the database lacks and which it has that this binary
    /// does not know (a newer version migrated it). Blocking.
    pub fn migration_status(&self) -> anyhow::Result<MigrationStatus> {
        let mut conn = self.pool.get()?;
        let conn: &mut AnyConnection = &mut conn;
        let status = match conn {
            AnyConnection::Sqlite(c) => migration_status(c, SQLITE_MIGRATIONS),
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(c) => migration_status(c, POSTGRES_MIGRATIONS),
        };
        status.map_err(|e| anyhow::anyhow!("cannot read the applied migrations: {e}"))
    }

    /// Runs blocking database work on the blocking pool, inside the caller's span.
    #[expect(
        clippy::disallowed_methods,
        reason = "the one way to the blocking pool (api/clippy.toml)"
    )]
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(|e| {
                    tracing::error!(error = %e, "no database connection");
                    Error::Unavailable("the database is not available".into())
                })?;
                f(&mut conn)
            })
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("database task failed: {e}")))?
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        self.run(|c| {
            diesel::sql_query("SELECT 1").execute(c).map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

/// See [`Store::migration_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: usize,
    pub pending: Vec<String>,
    pub unknown: Vec<String>,
}

fn migration_status<DB, C>(
    conn: &mut C,
    source: EmbeddedMigrations,
) -> diesel::migration::Result<MigrationStatus>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    use diesel::migration::MigrationSource;
    let known: Vec<String> = MigrationSource::<DB>::migrations(&source)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let applied: Vec<String> = names(conn.applied_migrations()?);
    Ok(MigrationStatus {
        applied: applied.len(),
        pending: known
            .iter()
            .filter(|k| !applied.contains(k))
            .cloned()
            .collect(),
        unknown: applied
            .iter()
            .filter(|a| !known.contains(a))
            .cloned()
            .collect(),
    })
}

fn names(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|m| m.to_string()).collect()
}

/// A read-then-write transaction: `BEGIN IMMEDIATE` on SQLite (a deferred
/// transaction that reads and then writes fails with "database is locked"
/// under contention), an ordinary transaction on PostgreSQL.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place that begins a transaction (api/clippy.toml)"
)]
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::Connection;
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return conn.transaction(f);
    }
    fn sqlite(conn: &mut AnyConnection) -> &mut diesel::SqliteConnection {
        match conn {
            AnyConnection::Sqlite(sq) => sq,
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(_) => unreachable!("checked above"),
        }
    }
    // Inside another transaction: a savepoint (the outer one holds the lock).
    let nested = <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::transaction_manager_status_mut(sqlite(conn))
        .transaction_depth()?
        .is_some();
    if nested {
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite(conn), "BEGIN IMMEDIATE")?;
    // The closure runs on the multi-backend connection; its queries go to the
    // same SQLite connection, inside the transaction begun above.
    match f(conn) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite(conn))?;
            Ok(value)
        }
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite(conn))?;
            Err(e)
        }
    }
}

/// A database error the caller did not expect: logged, answered as 500.
pub fn db_error(e: diesel::result::Error) -> Error {
    Error::Internal(anyhow::Error::new(e).context("database query failed"))
}

/// Whether `e` is a unique-constraint violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Whether `e` is a foreign-key violation.
pub fn is_foreign_key_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _
        )
    )
}

/// Current UTC time at microsecond precision (what both backends store).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
