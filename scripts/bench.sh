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
#   scripts/bench.sh --only bridge   # one part (see --help): here the bridge
#                               # against Dovecot directly and email-oauth2-proxy
#
# Needs root for Dovecot (as the test command does); installs wrk with apt and
# email-oauth2-proxy (PyPI `emailproxy`, pinned) into a virtualenv in .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
# The bridge's second baseline, only for the benchmark (never the tests).
EMAILPROXY_VERSION=2026.7.3
emailproxy_venv=.tools/emailproxy-$EMAILPROXY_VERSION
if ! "$emailproxy_venv/bin/python" -c 'import emailproxy' 2>/dev/null; then
  python3 -m venv "$emailproxy_venv"
  "$emailproxy_venv/bin/pip" install -q --disable-pip-version-check "emailproxy==$EMAILPROXY_VERSION"
fi
# 1,000 idle sessions through a bridge: a client's, the bridge's and the
# upstream's descriptors in one machine.
ulimit -n 65536 2>/dev/null || true
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
# The criterion run (its own build) only when the crypto part runs.
crypto=yes previous=""
for arg in "$@"; do
  if [ "$previous" = --only ] && [[ ",$arg," != *,crypto,* ]]; then crypto=no; fi
  previous=$arg
done
if [ "$crypto" = yes ]; then
  echo "== encryption per value (criterion)" >&2
  cargo bench --locked -p inboxlink --features postgres --bench crypto -- --warm-up-time 1 --measurement-time 3 >&2
fi
echo "== the service" >&2
taskset -c 1 target/release/inboxlink-bench --binary target/release/inboxlink \
  --criterion target/criterion --emailproxy "$emailproxy_venv/bin/python" \
  --out bench.json --markdown bench.md "$@"
