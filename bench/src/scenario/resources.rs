//! Start-up time and resident memory of an idle instance.

use inboxlink_tests::fake_entra::FakeEntra;

use crate::load::{median_p99, ms};
use crate::table::{Goal, Table};
use crate::{Args, launch};

/// Part 5 of the issue: start-up time and resident memory of an idle instance.
pub async fn resources_at_start(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("start-up and memory:");
    let dir = tempfile::tempdir().expect("temp dir");
    let l = launch(a, dir.path(), None, fake);
    let first = l.start().await;
    let idle = first.rss_mib();
    let fresh = first.ready_after;
    drop(first);
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(l.start().await.ready_after);
    }
    let (restart, _) = median_p99(again);
    t.goal(
        "resources",
        "start to /readyz, new SQLite database (migrations)",
        ms(fresh),
        "ms",
        Goal::AtMost(300.0),
    );
    t.goal(
        "resources",
        "start to /readyz, existing database (median of 5)",
        ms(restart),
        "ms",
        Goal::AtMost(300.0),
    );
    t.add("resources", "resident memory, idle", idle, "MiB");
}
