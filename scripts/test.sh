#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
# installs what the tests need, starts a throw-away PostgreSQL cluster, checks
# formatting and lints, and runs every test on SQLite and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap postgres_stop EXIT
postgres_start

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (SQLite and PostgreSQL)" >&2
log=$(mktemp)
trap 'postgres_stop; rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
