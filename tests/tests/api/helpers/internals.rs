//! Every place a test reaches past the API into the service: its database
//! (rows aged or tampered with, what is stored at rest), its background
//! passes, its test hooks and its operations commands. Kept here, in one
//! file, so a change to the service's internals is adapted in one place.

use diesel::prelude::*;
use inboxlink::config::Backend;
use inboxlink::domain::OrgId;
use inboxlink::ops::{doctor, rekey};
use inboxlink::store::operations::{SecretColumn, secret_page};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{ORG, TestApp};

impl TestApp {
    /// The bridge's login check, as its listeners call it.
    pub async fn bridge_login(
        &self,
        username: &str,
        password: &str,
        peer: std::net::IpAddr,
    ) -> Result<
        inboxlink::service::bridge_passwords::BridgeLogin,
        inboxlink::service::bridge_passwords::BridgeRefusal,
    > {
        self.services.bridge_login(username, password, peer).await
    }

    /// `GET /mailboxes/{id}/access-token`'s use case for a caller that gives
    /// up after `patience`: its future is dropped where it stands.
    pub async fn abandon_access_token(&self, mailbox: Uuid, patience: std::time::Duration) {
        let who = inboxlink::auth::Principal {
            subject: "impatient".to_owned(),
            org: OrgId::parse(ORG).expect("org"),
            roles: vec![inboxlink::auth::Role::Service],
        };
        let id = inboxlink::domain::MailboxId::from_uuid(mailbox);
        let call = self
            .services
            .mailbox_access_token(&who, id, Default::default());
        let answered = tokio::time::timeout(patience, call).await;
        assert!(answered.is_err(), "answered within {patience:?}");
    }

    /// Holds a write lock on the mailbox's row from another connection of
    /// the pool (PostgreSQL: `SELECT ... FOR UPDATE`; SQLite: the database's
    /// write lock) until the returned sender is dropped or sent to: a write
    /// to the row waits meanwhile.
    pub async fn hold_mailbox_row(&self, mailbox: Uuid) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (locked, is_locked) = tokio::sync::oneshot::channel::<()>();
        let (store, postgres) = (
            self.services.store.clone(),
            self.backend == Backend::Postgres,
        );
        tokio::spawn(async move {
            store
                .query(move |c| {
                    let id = mailbox.to_string();
                    if postgres {
                        diesel::sql_query("BEGIN").execute(c)?;
                        diesel::sql_query(format!(
                            "SELECT id FROM mailboxes WHERE id = '{id}' FOR UPDATE"
                        ))
                        .execute(c)?;
                    } else {
                        diesel::sql_query("BEGIN IMMEDIATE").execute(c)?;
                    }
                    let _ = locked.send(());
                    let _ = released.recv();
                    diesel::sql_query("ROLLBACK").execute(c)?;
                    Ok(())
                })
                .await
                .expect("the lock is held and released");
        });
        is_locked.await.expect("the row is locked");
        release
    }

    /// Every stored bridge password (id, name, selector, hash), as text.
    pub async fn stored_bridge_passwords(&self) -> String {
        use inboxlink::store::schema::bridge_passwords::dsl::*;
        self.services
            .store
            .query(|c| {
                let rows: Vec<(String, String, String, String)> = bridge_passwords
                    .select((id, name, selector, hash))
                    .load(c)?;
                Ok(format!("{rows:?}"))
            })
            .await
            .expect("rows")
    }

    /// Runs one SQL statement on the app's database.
    pub async fn execute(&self, sql: impl Into<String>) {
        let sql = sql.into();
        self.services
            .store
            .query(move |c| {
                diesel::sql_query(sql).execute(c)?;
                Ok(())
            })
            .await
            .expect("the statement runs");
    }

    /// Pretends the mailbox's refresh token was issued `days` ago.
    pub async fn age_grant(&self, mailbox: Uuid, days: i64) {
        use inboxlink::store::schema::mailboxes::dsl::*;
        let (mid, issued) = (mailbox.to_string(), ago(chrono::Duration::days(days)));
        self.services
            .store
            .query(move |c| {
                diesel::update(mailboxes.filter(id.eq(&mid)))
                    .set(refresh_token_issued_at.eq(Some(issued)))
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("aged");
    }

    /// Lets the mailbox's pending sign-ins expire `before` ago.
    pub async fn expire_sign_ins_of(&self, mailbox: Uuid, before: chrono::Duration) {
        use inboxlink::store::schema::authorizations::dsl::*;
        let (mid, past) = (mailbox.to_string(), ago(before));
        self.services
            .store
            .query(move |c| {
                diesel::update(authorizations.filter(mailbox_id.eq(&mid)))
                    .set(expires_at.eq(past))
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("expired");
    }

    /// Replaces the stored address, as an older version might have stored it.
    pub async fn set_stored_email(&self, mailbox: Uuid, stored: &str) {
        use inboxlink::store::schema::mailboxes::dsl::*;
        let (mid, stored) = (mailbox.to_string(), stored.to_owned());
        self.services
            .store
            .query(move |c| {
                diesel::update(mailboxes.filter(id.eq(mid)))
                    .set(email.eq(stored))
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("tampered");
    }

    /// How many sign-ins and consent links are pending (rows of `authorizations`).
    pub async fn pending_sign_ins(&self) -> i64 {
        use inboxlink::store::schema::authorizations::dsl::*;
        self.services
            .store
            .query(|c| Ok(authorizations.count().get_result::<i64>(c)?))
            .await
            .expect("count")
    }

    /// The names of the indexes on `authorizations`.
    pub async fn authorization_indexes(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct IndexName {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'authorizations'"
            }
            Backend::Postgres => {
                "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'authorizations'"
            }
        };
        let names = self
            .services
            .store
            .query(move |c| Ok(diesel::sql_query(sql).load::<IndexName>(c)?))
            .await
            .expect("indexes");
        names.into_iter().map(|n| n.name).collect()
    }

    /// Runs the down migration `migration` (a folder of `migrations/<dialect>`)
    /// and forgets that `version` was applied, as a database of the version
    /// before would be.
    pub async fn revert_migration(&self, migration: &str, version: &'static str) {
        let dialect = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let down = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(dialect)
            .join(migration)
            .join("down.sql");
        let down = std::fs::read_to_string(down).expect("down.sql");
        self.services
            .store
            .query(move |c| {
                use diesel::connection::SimpleConnection;
                c.batch_execute(&down)?;
                diesel::sql_query(format!(
                    "DELETE FROM __diesel_schema_migrations WHERE version = '{version}'"
                ))
                .execute(c)?;
                Ok(())
            })
            .await
            .expect("reverted");
    }

    /// The PKCE verifier of the (only) pending sign-in, decrypted.
    pub async fn stored_verifier(&self) -> String {
        use inboxlink::store::schema::authorizations::dsl::*;
        let (row, sealed): (String, Option<String>) = self
            .services
            .store
            .query(|c| Ok(authorizations.select((id, pkce_verifier)).first(c)?))
            .await
            .expect("a pending sign-in");
        self.decrypt("authorizations", "pkce_verifier", &row, sealed)
    }

    /// The mailbox's stored refresh token, decrypted.
    pub async fn stored_refresh_token(&self, mailbox: Uuid) -> String {
        use inboxlink::store::schema::mailboxes::dsl::*;
        let mid = mailbox.to_string();
        let row = mid.clone();
        let sealed: Option<String> = self
            .services
            .store
            .query(move |c| {
                Ok(mailboxes
                    .filter(id.eq(&row))
                    .select(refresh_token)
                    .first(c)?)
            })
            .await
            .expect("the mailbox row");
        self.decrypt("mailboxes", "refresh_token", &mid, sealed)
    }

    fn decrypt(&self, table: &str, column: &str, row_id: &str, sealed: Option<String>) -> String {
        let sealed = sealed.unwrap_or_else(|| panic!("a value in {table}.{column}"));
        assert!(sealed.starts_with("v1."), "stored as ciphertext");
        let slot = inboxlink::crypto::Slot {
            table,
            column,
            row_id,
        };
        let plain = self.services.cipher.decrypt_string(&sealed, slot);
        plain.expect("decrypts").expose_secret().to_owned()
    }

    /// The client secret of an app credential of [`ORG`], decrypted by the service.
    pub async fn stored_client_secret(&self, id: Uuid) -> Result<String, inboxlink::Error> {
        let org = OrgId::parse(ORG).expect("org");
        let found = self
            .services
            .app_credential_with_secret(&org, id.into())
            .await;
        found.map(|(_, secret)| secret.expose_secret().to_owned())
    }

    /// The SQLite files' bytes (all tables), or the rows of `table` on PostgreSQL.
    pub async fn stored_dump(&self, table: &'static str) -> String {
        match self.backend {
            Backend::Sqlite => {
                let path = self.origin.sqlite_path.clone().expect("sqlite path");
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    if let Ok(bytes) = std::fs::read(&p) {
                        all.extend(bytes);
                    }
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            Backend::Postgres => {
                let url = self.origin.postgres_url.clone().expect("pg url");
                tokio::task::spawn_blocking(move || dump_postgres(&url, table))
                    .await
                    .expect("task")
            }
        }
    }

    /// (row id, stored value) of every value of `column`.
    pub async fn stored_values(&self, column: SecretColumn) -> Vec<(String, String)> {
        self.services
            .store
            .query(move |c| secret_page(c, column, None, 1000))
            .await
            .expect("values")
    }

    /// The id of the key new values are encrypted with.
    pub fn current_key_id(&self) -> String {
        self.services.cipher.current_key_id().to_owned()
    }

    /// `inboxlink doctor`'s checks of the database and its encrypted values.
    pub async fn doctor(&self) -> doctor::Report {
        doctor::diagnose_store(&self.services.store, &self.services.cipher).await
    }

    /// `inboxlink rekey`.
    pub async fn rekey(&self) -> rekey::RekeyReport {
        let report = rekey::rekey(&self.services.store, &self.services.cipher).await;
        report.expect("rekey")
    }

    /// One keep-alive pass, as the background task runs it.
    pub async fn keepalive_sweep(&self) -> inboxlink::service::keepalive::Sweep {
        self.services.keepalive_sweep().await.expect("sweep")
    }

    /// One housekeeping pass.
    pub async fn housekeeping(&self) -> inboxlink::service::housekeeping::Housekeeping {
        self.services.housekeeping().await.expect("housekeeping")
    }

    /// How often the metrics counted the mailboxes in the database.
    pub fn metrics_count_queries(&self) -> u64 {
        self.services.metrics_counts.queries()
    }

    /// Makes the token keeper fail after Microsoft answered, before it commits.
    pub fn crash_before_commit(&self) {
        let hook = &self.services.keeper.crash_before_commit;
        hook.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn ago(d: chrono::Duration) -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc() - d
}

fn dump_postgres(url: &str, table: &str) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    let mut c = diesel::PgConnection::establish(url).expect("connect");
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT row_to_json(a)::text AS dump FROM {table} a"
    ))
    .load(&mut c)
    .expect("dump");
    let dumps: Vec<String> = rows.into_iter().map(|r| r.dump).collect();
    dumps.join("\n")
}
