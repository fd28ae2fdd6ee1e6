#!/usr/bin/env bash
# The benchmark: release build, the service pinned to core 0 and the load
# generator to core 1, against SQLite and a throw-away PostgreSQL, the fake
# Entra ID and a private Dovecot. Prints one table (figures and ratios against
# baselines measured in the same run) and writes it as JSON (default
# bench.json). Not part of the test command. Usage: scripts/bench.sh [--quick] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap postgres_stop EXIT
postgres_start

cargo build --release --locked -p inboxlink -p inboxlink-tests --bin inboxlink --bin inboxlink-bench
out=bench.json
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
target/release/inboxlink-bench --binary target/release/inboxlink --out "$out" "${args[@]}"
