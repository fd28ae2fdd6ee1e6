//! A fresh PostgreSQL database per test, in the throw-away cluster that
//! `scripts/test.sh` starts (`TEST_POSTGRES_URL`).

use diesel::{Connection, PgConnection, RunQueryDsl};

fn admin_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Whether the PostgreSQL cases run: panics without a cluster, unless the
/// developer skips them outside CI with `TEST_SKIP_POSTGRES=1`.
pub(super) fn available() -> bool {
    if admin_url().is_some() {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !in_ci && std::env::var("TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED on PostgreSQL: TEST_SKIP_POSTGRES=1");
        return false;
    }
    panic!(
        "TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, which starts a throw-away PostgreSQL cluster"
    );
}

/// A fresh database in the cluster (or in the one of `cluster`, a URL of
/// its `postgres` database); returns its URL.
pub(super) async fn create_database(cluster: Option<&str>) -> String {
    let admin = cluster
        .map(str::to_owned)
        .or_else(admin_url)
        .expect("TEST_POSTGRES_URL");
    let name = format!("inboxlink_test_{}", uuid::Uuid::new_v4().simple());
    let (admin_for_task, name_for_task) = (admin.clone(), name.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn =
            PgConnection::establish(&admin_for_task).expect("connect to the test cluster");
        diesel::sql_query(format!("CREATE DATABASE {name_for_task}"))
            .execute(&mut conn)
            .expect("create database");
    })
    .await
    .expect("create database task");
    let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}
