#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
# installs what the tests need, starts a throw-away PostgreSQL cluster, checks
# formatting and lints, the dependency tree's licences and banned crates
# (scripts/deny.sh: cargo-deny, installed into .tools/), builds the READMEs'
# SDK snippets as an integrator's crate (sdk/readme-check), runs every test on
# SQLite and on PostgreSQL, the service crate's tests once more as the default
# build (SQLite only), lints the committed OpenAPI spec with Redocly
# (scripts/lint-spec.sh), then the Postman collection with newman against the
# sandbox (scripts/newman.sh), and schemathesis against the served spec
# (scripts/schemathesis.sh, about 90 seconds).
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
# The workspace build has PostgreSQL (the test crate enables inboxlink's
# feature `postgres`); `cargo run -p inboxlink` builds without it: lint that too.
echo "== cargo clippy: the default build (SQLite only)" >&2
cargo clippy -p inboxlink --all-targets --locked -- -D warnings
echo "== cargo deny check licenses bans" >&2
scripts/deny.sh
# The SDK exactly as the READMEs show it, built as a crate outside the
# workspace (a test keeps its sources equal to the READMEs' Rust blocks): an
# SDK change that breaks a documented call fails here. Same target directory,
# so the dependencies already built are reused.
echo "== the READMEs' SDK snippets (sdk/readme-check)" >&2
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
  cargo build --manifest-path sdk/readme-check/Cargo.toml --locked
echo "== cargo test (SQLite and PostgreSQL)" >&2
log=$(mktemp)
trap 'postgres_stop; rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# The service crate's own tests once more on the default build (what `cargo
# run -p inboxlink` builds): its binary links no libpq, and refuses a
# postgres:// URL saying how to build with PostgreSQL.
echo "== cargo test: the service as the default build (SQLite only)" >&2
cargo test -p inboxlink --locked --no-fail-fast 2>&1 | tee -a "$log" || status=$?
echo "== redocly lint (the committed OpenAPI spec; warnings fail too)" >&2
lint_failed=0
scripts/lint-spec.sh || lint_failed=1
[ "$lint_failed" -eq 0 ] || [ "$status" -ne 0 ] || status=1
echo "== newman (the Postman collection against the sandbox)" >&2
newman_totals=$(mktemp)
trap 'postgres_stop; rm -f "$log" "$newman_totals"' EXIT
newman_status=0
# The sandbox and the SDK example as `cargo test --workspace` built them.
NEWMAN_TOTALS_FILE="$newman_totals" \
  INBOXLINK_PREBUILT_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" scripts/newman.sh || newman_status=$?
if [ "$newman_status" -ne 0 ]; then
  [ "$status" -ne 0 ] || status=$newman_status
  # newman failed before counting anything: still one failure in the summary.
  [ -s "$newman_totals" ] || echo "0 1" >"$newman_totals"
fi
echo "== schemathesis (every operation of the served spec, bounded in time)" >&2
st_totals=$(mktemp)
trap 'postgres_stop; rm -f "$log" "$newman_totals" "$st_totals"' EXIT
st_status=0
# 80 s of generation here (the script's own default is 110): the test
# command stays within its half hour on two cores.
SCHEMATHESIS_TOTALS_FILE="$st_totals" SCHEMATHESIS_MAX_TIME=80 \
  INBOXLINK_PREBUILT_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" scripts/schemathesis.sh || st_status=$?
if [ "$st_status" -ne 0 ]; then
  [ "$status" -ne 0 ] || status=$st_status
  [ -s "$st_totals" ] || echo "0 1" >"$st_totals"
fi
# One closing line over all test binaries, the spec lint (one), newman's
# assertions and schemathesis' test cases.
awk -v totals="$newman_totals" -v st_totals="$st_totals" -v lint_failed="$lint_failed" '
  /^test result:/ { p += $4; f += $6 }
  END {
    if (lint_failed) f += 1; else p += 1
    if ((getline line < totals) > 0) { split(line, n, " "); p += n[1]; f += n[2] }
    if ((getline line < st_totals) > 0) { split(line, n, " "); p += n[1]; f += n[2] }
    printf "tests: %d passed, %d failed\n", p, f
  }' "$log"
exit "$status"
