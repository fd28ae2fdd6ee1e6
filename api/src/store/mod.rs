//! Persistence: diesel over one [`AnyConnection`] (SQLite or PostgreSQL,
//! chosen from the URL scheme), pooled with r2d2. Blocking database work runs
//! on tokio's blocking pool through [`Store::run`], never on the async
//! workers: not even a short SQLite read, which in WAL mode can wait (a
//! busy read-mark slot, a checkpoint resetting the log) and would then stall
//! every connection of that worker (docs/reliability.md).
//!
//! Every query function takes the caller's [`OrgId`](crate::domain::OrgId):
//! another organisation's rows cannot be read or changed through this module.
//! The exceptions are named where they are: the OAuth callback's state lookup
//! and housekeeping of expired rows.
//!
//! Which error each layer returns (as crates.io's `util/errors.rs` says it):
//! query functions here return [`StoreResult`], a [`StoreError`] that knows
//! nothing of HTTP: not found, a unique or foreign-key constraint, the
//! database unavailable, or anything else. The services map them to the
//! API's errors; a use case that expects a constraint matches it first.

/// One page of `$query` in the order of its key `$id`, boxed so that the
/// caller can add filters: `after` a cursor in ascending order, or `before`
/// one in descending order (newest first); at most `$limit` rows.
macro_rules! id_page {
    ($query:expr, $id:expr, after $cursor:expr, $limit:expr) => {{
        let mut query = $query.order($id.asc()).limit($limit).into_boxed();
        if let Some(cursor) = $cursor {
            query = query.filter($id.gt(cursor));
        }
        query
    }};
    ($query:expr, $id:expr, before $cursor:expr, $limit:expr) => {{
        let mut query = $query.order($id.desc()).limit($limit).into_boxed();
        if let Some(cursor) = $cursor {
            query = query.filter($id.lt(cursor));
        }
        query
    }};
}
// Defined before the modules below, so each of them sees it.

pub mod addresses;
pub mod app_credentials;
pub mod audit;
pub mod authorizations;
pub mod bridge_passwords;
mod connection;
pub mod deliveries;
pub mod events;
pub mod mailboxes;
pub mod operations;
pub mod schema;
pub mod targets;
pub mod tokens;

use std::time::Duration;

use diesel::{QueryResult, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

pub use connection::{AnyConnection, Manager, MultiBackend};

use crate::config::{Backend, DatabaseSettings};

// A migration file the same in both dialects is kept once, in sqlite/;
// postgres/ holds a relative link to it, which embed_migrations! reads through.
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
        applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    }

    /// Runs `f` on a pooled connection, on the calling thread (for blocking
    /// contexts such as start-up and the operator commands).
    pub fn blocking<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.pool.get().map_err(|e| {
            tracing::error!(error = %e, "no database connection");
            StoreError::Unavailable
        })?;
        f(&mut conn)
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
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(|e| {
                    tracing::error!(error = %e, "no database connection");
                    StoreError::Unavailable
                })?;
                f(&mut conn)
            })
        });
        task.await
            .map_err(|e| StoreError::Other(anyhow::anyhow!("database task failed: {e}")))?
    }

    /// [`Store::run`] inside a [`write_transaction`]: a use case's writes and
    /// their audit row commit together, or not at all.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        self.run(move |c| write_transaction(c, f)).await
    }

    /// [`Store::run`] for work that fails only with the store's own errors.
    pub async fn query<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> StoreResult<T> + Send + 'static,
    {
        self.run(f).await
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(|c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
        .await
    }
}

/// Why a query failed, in the store's terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row of this kind (in the caller's organisation).
    #[error("no {0} with this id")]
    NotFound(&'static str),
    /// A unique constraint refused the write.
    #[error("a unique constraint refused the write")]
    Unique,
    /// A foreign key refused the write.
    #[error("a foreign key refused the write")]
    ForeignKey,
    /// No connection could be had.
    #[error("the database is not available")]
    Unavailable,
    /// SQLite could not write: its disk (or file system) is full.
    #[error("the database's disk is full")]
    Full,
    /// Anything else: a bug, a broken connection.
    #[error(transparent)]
    Other(anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Unique,
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                StoreError::ForeignKey
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => StoreError::Unavailable,
            // SQLITE_FULL, which diesel reports by its message only.
            Error::DatabaseError(_, info)
                if info.message().contains("database or disk is full") =>
            {
                StoreError::Full
            }
            other => StoreError::Other(anyhow::Error::new(other).context("database query failed")),
        }
    }
}

/// The one row of a query, or [`StoreError::NotFound`] naming `what`.
pub(crate) fn found<T>(row: QueryResult<Option<T>>, what: &'static str) -> StoreResult<T> {
    row?.ok_or(StoreError::NotFound(what))
}

/// `Ok(None)` where `result` is [`StoreError::NotFound`]: a row that may
/// have gone meanwhile.
pub(crate) fn if_found<T>(result: StoreResult<T>) -> StoreResult<Option<T>> {
    match result {
        Ok(row) => Ok(Some(row)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A write that must touch its row: [`StoreError::NotFound`] naming `what`
/// when it touched none.
pub(crate) fn touched(rows: QueryResult<usize>, what: &'static str) -> StoreResult<()> {
    match rows? {
        0 => Err(StoreError::NotFound(what)),
        _ => Ok(()),
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
/// under contention), an ordinary transaction on PostgreSQL; inside another
/// transaction, a savepoint. The one way to a transaction outside the store.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place that begins a transaction (api/clippy.toml)"
)]
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::Connection;
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    /// The closure's error, or the transaction's own.
    enum Failed<E> {
        Closure(E),
        Db(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for Failed<E> {
        fn from(e: diesel::result::Error) -> Self {
            Failed::Db(e)
        }
    }
    let unwrap = |r: Result<T, Failed<E>>| match r {
        Ok(v) => Ok(v),
        Err(Failed::Closure(e)) => Err(e),
        Err(Failed::Db(e)) => Err(E::from(StoreError::from(e))),
    };
    let plain = |conn: &mut AnyConnection, f: F| {
        unwrap(conn.transaction(|c| f(c).map_err(Failed::Closure)))
    };
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return plain(conn, f);
    }
    fn sqlite(conn: &mut AnyConnection) -> &mut diesel::SqliteConnection {
        match conn {
            AnyConnection::Sqlite(sq) => sq,
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(_) => unreachable!("checked above"),
        }
    }
    // Inside another transaction: a savepoint (the outer one holds the lock).
    let depth = <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::transaction_manager_status_mut(sqlite(conn))
        .transaction_depth()
        .map_err(StoreError::from)?;
    if depth.is_some() {
        return plain(conn, f);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite(conn), "BEGIN IMMEDIATE")
        .map_err(StoreError::from)?;
    // The closure runs on the multi-backend connection; its queries go to the
    // same SQLite connection, inside the transaction begun above.
    match f(conn) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite(conn)).map_err(StoreError::from)?;
            Ok(value)
        }
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite(conn)).map_err(StoreError::from)?;
            Err(e)
        }
    }
}

/// Current UTC time at microsecond precision (what both backends store).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
