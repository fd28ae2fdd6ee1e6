#!/usr/bin/env bash
# The benchmark (not part of the test command): release build, the service
# pinned to core 0 and the load generators and the fake Entra ID to core 1,
# on SQLite and on a throw-away PostgreSQL, with a private Dovecot for the
# check. Prints one table of figures and ratios against baselines measured in
# the same run, and writes it as JSON (bench.json) and Markdown (bench.md);
# docs/benchmarks.md keeps the latest run's table and what it found.
#
#   scripts/bench.sh            # the full run (10,000 mailboxes), ~10 minutes
#   scripts/bench.sh --quick    # 1,000 mailboxes, shorter loads: a smoke test
#
# Needs root for Dovecot (as the test command does); installs wrk with apt.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
[ "$(nproc)" -ge 2 ] || echo "bench.sh: fewer than 2 cores: the service and the load share one" >&2

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap postgres_stop EXIT
postgres_start

# The service runs on PostgreSQL too: build it with the feature `postgres`, and
# the criterion run with the same features (a bench also builds the package's
# binary, which would otherwise replace target/release/inboxlink without it).
echo "== release build" >&2
cargo build --release --locked -p inboxlink -p inboxlink-bench --features inboxlink/postgres \
  --bin inboxlink --bin inboxlink-bench
echo "== encryption per value (criterion)" >&2
cargo bench --locked -p inboxlink --features postgres --bench crypto -- --warm-up-time 1 --measurement-time 3 >&2
echo "== the service" >&2
taskset -c 1 target/release/inboxlink-bench --binary target/release/inboxlink \
  --criterion target/criterion --out bench.json --markdown bench.md "$@"
