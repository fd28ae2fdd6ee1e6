#!/usr/bin/env bash
# The battery's long form (not part of the test command, which runs the
# short form): faults, load and hostile conditions at the sizes and
# durations of docs/reliability.md, against the service run as its own
# process, on SQLite and on a throw-away PostgreSQL. About 25 minutes.
# Prints every figure as `battery: scenario | name | value` and writes them
# to battery.txt; docs/reliability.md keeps the latest run's.
#
#   scripts/battery.sh              # every scenario, the long form
#   scripts/battery.sh kill         # the scenarios whose test name holds `kill`
#   scripts/battery.sh --short      # the short form alone (what CI runs)
#
# Needs root, as the test command does (Dovecot, the tmpfs of the disk-full
# scenario, PostgreSQL run as the `postgres` user).
set -euo pipefail
cd "$(dirname "$0")/.."

form=long
filter=
for arg in "$@"; do
  case "$arg" in
    --short) form=short ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) filter="$arg" ;;
  esac
done

scripts/install-test-deps.sh
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap postgres_stop EXIT
postgres_start

out="$PWD/battery.txt"
: >"$out"
{
  echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), form $form"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >>"$out"
# One scenario at a time: each measures the machine it has.
set +e
CI="${CI:-true}" INBOXLINK_BATTERY=$form INBOXLINK_BATTERY_OUT="$out" \
  cargo test --release --locked -p inboxlink-tests --test battery -- ${filter:+"$filter"} \
  --test-threads=1 --nocapture 2>&1 | grep -E '^(battery:|test |failures:|    [a-z_]+::)|panicked at|^test result'
status=${PIPESTATUS[0]}
set -e
echo "figures: $out"
exit "$status"
