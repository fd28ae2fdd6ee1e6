//! The connection type and the r2d2 manager. The backend comes from the URL
//! scheme (diesel's own multi-backend `establish` hides the real error), and
//! every SQLite connection gets its pragmas as it is opened. PostgreSQL is
//! there with the cargo feature `postgres` only (it links libpq).

#[cfg(feature = "postgres")]
use diesel::PgConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use crate::config::Backend;

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    #[cfg(feature = "postgres")]
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub struct Manager {
    backend: Backend,
    url: String,
}

impl Manager {
    pub fn new(backend: Backend, url: &str) -> Self {
        Self {
            backend,
            url: url.to_owned(),
        }
    }

    pub fn establish(&self) -> anyhow::Result<AnyConnection> {
        match self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => PgConnection::establish(&self.url)
                .map(AnyConnection::Postgresql)
                .map_err(|e| {
                    anyhow::anyhow!("cannot connect to PostgreSQL: {}", e.to_string().trim())
                }),
            // The configuration refuses a PostgreSQL URL in such a build already.
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => Err(anyhow::anyhow!(
                "this build of inboxlink has no PostgreSQL support (cargo feature `postgres`)"
            )),
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.url).map_err(|e| {
                    anyhow::anyhow!("cannot open the SQLite database {}: {e}", self.url)
                })?;
                // busy_timeout first, so setting WAL waits for other writers too.
                for pragma in [
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                ] {
                    diesel::sql_query(pragma)
                        .execute(&mut c)
                        .map_err(|e| anyhow::anyhow!("SQLite {pragma}: {e}"))?;
                }
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ManagerError(String);

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ManagerError;

    fn connect(&self) -> Result<AnyConnection, ManagerError> {
        self.establish().map_err(|e| ManagerError(format!("{e:#}")))
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ManagerError> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(|e| ManagerError(e.to_string()))
    }

    /// A connection left inside a failed transaction is not given out again.
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        match conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(c) => c.is_broken(),
            AnyConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

#[derive(Debug)]
pub struct LogErrors;

impl r2d2::HandleError<ManagerError> for LogErrors {
    fn handle_error(&self, error: ManagerError) {
        tracing::error!(%error, "database connection failed");
    }
}
