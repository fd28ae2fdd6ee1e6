#!/usr/bin/env bash
# Runs the Postman collection with newman against a fresh sandbox: builds and
# starts scripts/sandbox.sh on a free port in the background (with Dovecot,
# so it needs root: see scripts/install-test-deps.sh), waits for /readyz, runs
# postman/inboxlink.postman_collection.json with the environment the sandbox
# wrote (its live tokens), stops the sandbox, and exits non-zero if any
# request or assertion failed. Then runs the SDK's example
# (sdk/examples/connect_mailbox.rs) against the same sandbox, counted as one
# more assertion.
#
# newman is installed locally under .tools/ (npm, gitignored) when missing.
# The last line is `newman: N passed, M failed` (assertions); with
# NEWMAN_TOTALS_FILE set, "N M" is also written there (scripts/test.sh adds
# them to its summary). Extra arguments go to the sandbox (e.g. --no-mail).
# With INBOXLINK_PREBUILT_DIR (scripts/test.sh sets it to target/debug after
# `cargo test --workspace`, which builds both), the sandbox and the example
# are taken from there instead of being built again with other features.
set -euo pipefail
cd "$(dirname "$0")/.."

NEWMAN_VERSION=6
newman=.tools/node_modules/.bin/newman
collection=postman/inboxlink.postman_collection.json

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "newman.sh: \`$tool\` is missing: run scripts/install-test-deps.sh (installs nodejs and npm)" >&2
    exit 1
  fi
done
if [ ! -x "$newman" ]; then
  echo "== installing newman@$NEWMAN_VERSION into .tools/ (npm)" >&2
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION" >&2
fi

work=$(mktemp -d)
sandbox_pid=""
stop_sandbox() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$sandbox_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  sandbox_pid=""
}
cleanup() {
  stop_sandbox
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prebuilt=${INBOXLINK_PREBUILT_DIR:-}
if [ -n "$prebuilt" ]; then
  for bin in "$prebuilt/inboxlink-sandbox" "$prebuilt/examples/connect_mailbox"; do
    [ -x "$bin" ] || { echo "newman.sh: INBOXLINK_PREBUILT_DIR has no $bin" >&2; exit 1; }
  done
  export INBOXLINK_SANDBOX_BIN="$prebuilt/inboxlink-sandbox"
else
  echo "== building the sandbox" >&2
  cargo build -q -p inboxlink-tests --bin inboxlink-sandbox >&2
fi

env_file="$work/sandbox.postman_environment.json"
sandbox_log="$work/sandbox.log"
echo "== starting the sandbox (log: $sandbox_log)" >&2
# --receiver: the log shows each webhook delivery the walk causes.
scripts/sandbox.sh --port 0 --receiver --env-file "$env_file" "$@" >"$sandbox_log" 2>&1 &
sandbox_pid=$!

sandbox_failed() {
  echo "newman.sh: $1; the sandbox's output:" >&2
  tail -n 40 "$sandbox_log" >&2 || true
  [ -z "${NEWMAN_TOTALS_FILE:-}" ] || echo "0 1" >"$NEWMAN_TOTALS_FILE"
  exit 1
}

# The environment file appears once everything is up (written whole, then renamed).
for _ in $(seq 600); do
  [ -f "$env_file" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || sandbox_failed "the sandbox exited during start-up"
  sleep 0.1
done
[ -f "$env_file" ] || sandbox_failed "the sandbox did not start within 60 s"

base_url=$(node -e '
  const env = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(env.values.find(v => v.key === "baseUrl").value);
' "$env_file")
ready=0
for _ in $(seq 100); do
  if node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$base_url/readyz"; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || sandbox_failed "$base_url/readyz did not answer 200"
echo "== newman: $collection against $base_url" >&2

report="$work/newman.json"
status=0
"$newman" run "$collection" \
  --environment "$env_file" \
  --reporters cli,json \
  --reporter-json-export "$report" \
  --color off || status=$?

# The SDK's example, as an integrator runs it, against the same sandbox (the
# collection's walk deleted what it created, so the mailbox is free again).
echo "== the SDK example (sdk/examples/connect_mailbox.rs) against $base_url" >&2
example_status=0
env_value() {
  node -e '
    const env = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(env.values.find(v => v.key === process.argv[2]).value);
  ' "$env_file" "$1"
}
run_example() {
  if [ -n "$prebuilt" ]; then
    "$prebuilt/examples/connect_mailbox" "$@"
  else
    cargo run -q -p inboxlink-sdk --example connect_mailbox -- "$@"
  fi
}
INBOXLINK_URL=$base_url INBOXLINK_TOKEN=$(env_value adminToken) \
  INBOXLINK_SERVICE_TOKEN=$(env_value serviceToken) \
  ENTRA_TENANT_ID=$(env_value tenantId) ENTRA_CLIENT_ID=$(env_value clientId) \
  ENTRA_CLIENT_SECRET=$(env_value clientSecret) MAILBOX=$(env_value mailbox) \
  run_example --open-sign-in-url || example_status=$?
stop_sandbox

if [ ! -f "$report" ]; then
  echo "newman.sh: newman wrote no report (exit $status)" >&2
  [ -z "${NEWMAN_TOTALS_FILE:-}" ] || echo "0 1" >"$NEWMAN_TOTALS_FILE"
  exit 1
fi
# Assertions passed and failed; a request that errored (no response) counts as a failure too.
read -r passed failed < <(node -e '
  const run = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).run;
  const a = run.stats.assertions, r = run.stats.requests;
  const failed = a.failed + r.failed + run.stats.testScripts.failed + run.stats.prerequestScripts.failed;
  console.log(`${a.total - a.failed} ${failed}`);
' "$report")
passed=${passed:-0}
failed=${failed:-1}
if [ "$example_status" -eq 0 ]; then
  passed=$((passed + 1))
else
  echo "newman.sh: the SDK example failed (exit $example_status)" >&2
  failed=$((failed + 1))
fi
[ -z "${NEWMAN_TOTALS_FILE:-}" ] || echo "$passed $failed" >"$NEWMAN_TOTALS_FILE"
if [ "$failed" -gt 0 ] && [ "$status" -eq 0 ]; then
  status=1
fi
echo "newman: $passed passed, $failed failed (the SDK example counted as one)"
exit "$status"
