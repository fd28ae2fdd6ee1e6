#!/usr/bin/env bash
# Fuzzes the running service against its own OpenAPI spec with Schemathesis
# (PyPI `schemathesis`, pinned below): starts the sandbox (the real service
# with the fake Microsoft sign-in, `--no-mail`) on a free port, creates
# fixtures through the API with curl (app credentials, a signed-in mailbox,
# bridge passwords, a webhook with a delivery, an email alert) so that path
# parameters hit existing resources, then runs `st run` against
# GET /openapi.json with the admin token: every operation, phases examples,
# coverage, fuzzing and stateful, bounded by a total time budget. Exits
# non-zero on any failure; the sandbox is stopped on exit.
#
# Checks: not_a_server_error, status_code_conformance,
# content_type_conformance, response_schema_conformance,
# response_headers_conformance, negative_data_rejection, unsupported_method,
# allow_header_conformance, missing_required_header, ignored_auth,
# use_after_free, ensure_resource_availability (see the config below for the
# ones switched off where they cannot hold, and why).
#
# Schemathesis is installed into a virtualenv under .tools/ when missing
# (python3 -m venv + pip). With CI=true a missing python3 or a failed install
# fails the script; elsewhere it skips (exit 0) saying why.
#
# When it can (root: `unshare --net`), everything runs in a network namespace
# of its own with only the loopback up, so that nothing the fuzzer makes the
# service do (webhook deliveries to generated URLs, sign-ins) leaves the
# machine. Without it, webhook URLs in request bodies are pinned to the
# sandbox's receiver instead.
#
#   scripts/schemathesis.sh                    # ~2 min on 2 cores
#   SCHEMATHESIS_MAX_TIME=60 scripts/schemathesis.sh
#   scripts/schemathesis.sh --seed 1234        # extra arguments go to `st run`
#
# With INBOXLINK_PREBUILT_DIR (scripts/test.sh: target/debug after `cargo test
# --workspace`), the sandbox is taken from there; otherwise it is built.
# The last line is `schemathesis: N passed, M failed` (test cases); with
# SCHEMATHESIS_TOTALS_FILE set, "N M" is also written there. The reports
# (JUnit, NDJSON) stay in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=.tools/schemathesis-$SCHEMATHESIS_VERSION
st=$venv/bin/st
# The whole run's budget for `st run` (its --max-time: fuzzing and stateful
# testing repeat until it is spent) and the test cases per operation per phase.
max_time=${SCHEMATHESIS_MAX_TIME:-110}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-40}
report_dir=${SCHEMATHESIS_REPORT_DIR:-$PWD/target/schemathesis}

fail_or_skip() {
  if [ "${CI:-}" = true ]; then
    echo "schemathesis.sh: $1" >&2
    [ -z "${SCHEMATHESIS_TOTALS_FILE:-}" ] || echo "0 1" >"$SCHEMATHESIS_TOTALS_FILE"
    exit 1
  fi
  echo "schemathesis.sh: $1; skipped (with CI=true this fails)" >&2
  exit 0
}

# Installing needs the network: outside the namespace (below), once.
if [ -z "${INBOXLINK_ST_NETNS:-}" ]; then
  if ! "$venv/bin/python" -c 'import schemathesis' 2>/dev/null; then
    command -v python3 >/dev/null ||
      fail_or_skip "python3 is missing (apt-get install python3 python3-venv)"
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv (pip)" >&2
    rm -rf "$venv"
    if ! { python3 -m venv "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"; } >&2; then
      rm -rf "$venv"
      fail_or_skip "installing schemathesis $SCHEMATHESIS_VERSION failed (needs python3-venv and PyPI)"
    fi
  fi
  [ "$("$st" --version)" = "st, version $SCHEMATHESIS_VERSION" ] ||
    fail_or_skip "$st is not version $SCHEMATHESIS_VERSION"

  prebuilt=${INBOXLINK_PREBUILT_DIR:-}
  if [ -n "$prebuilt" ]; then
    sandbox_bin="$prebuilt/inboxlink-sandbox"
    [ -x "$sandbox_bin" ] || { echo "schemathesis.sh: INBOXLINK_PREBUILT_DIR has no $sandbox_bin" >&2; exit 1; }
  else
    echo "== building the sandbox" >&2
    cargo build -q -p inboxlink-tests --bin inboxlink-sandbox >&2
    sandbox_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/inboxlink-sandbox"
  fi
  export INBOXLINK_ST_SANDBOX_BIN=$sandbox_bin
  # A network namespace of our own: only loopback, nothing reaches out.
  if unshare --net true 2>/dev/null; then
    export INBOXLINK_ST_NETNS=1
    exec unshare --net -- "$0" "$@"
  fi
  echo "== no network namespace (needs root): webhook URLs are pinned to the sandbox's receiver" >&2
  INBOXLINK_ST_NETNS=none
fi
if [ "$INBOXLINK_ST_NETNS" = 1 ]; then
  ip link set lo up
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

py=$venv/bin/python
env_file=$work/sandbox.env.json
sandbox_log=$work/sandbox.log
echo "== starting the sandbox (--no-mail)" >&2
INBOXLINK_LOG=${INBOXLINK_LOG:-warn} \
  "$INBOXLINK_ST_SANDBOX_BIN" --port 0 --no-mail --env-file "$env_file" >"$sandbox_log" 2>&1 &
sandbox_pid=$!

sandbox_failed() {
  echo "schemathesis.sh: $1; the sandbox's output:" >&2
  tail -n 40 "$sandbox_log" >&2 || true
  [ -z "${SCHEMATHESIS_TOTALS_FILE:-}" ] || echo "0 1" >"$SCHEMATHESIS_TOTALS_FILE"
  exit 1
}
for _ in $(seq 600); do
  [ -f "$env_file" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || sandbox_failed "the sandbox exited during start-up"
  sleep 0.1
done
[ -f "$env_file" ] || sandbox_failed "the sandbox did not start within 60 s"
env_value() {
  "$py" -c '
import json, sys
env = json.load(open(sys.argv[1]))
print(next(v["value"] for v in env["values"] if v["key"] == sys.argv[2]))
' "$env_file" "$1"
}
base_url=$(env_value baseUrl)
admin_token=$(env_value adminToken)
for _ in $(seq 100); do
  curl -sf -o /dev/null "$base_url/readyz" && break
  sleep 0.1
done
curl -sf -o /dev/null "$base_url/readyz" || sandbox_failed "$base_url/readyz did not answer 200"

# --- fixtures ---------------------------------------------------------------
# api METHOD PATH [JSON]: the response body; fails unless 2xx.
api() {
  local args=(-sS -X "$1" "$base_url$2" -H "Authorization: Bearer $admin_token" -w '\n%{http_code}')
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data "$3")
  local out code
  out=$(curl "${args[@]}") || sandbox_failed "fixture: $1 $2: curl failed"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  case "$code" in
    2??) printf '%s' "$out" ;;
    *) sandbox_failed "fixture: $1 $2 answered $code: $out" ;;
  esac
}
# field JSON KEY: a top-level field (or KEY.0.SUB for the first item of a list).
field() {
  "$py" -c '
import json, sys
value = json.loads(sys.argv[1])
for part in sys.argv[2].split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
print(value)
' "$1" "$2"
}
echo "== creating fixtures through the API" >&2
tenant=$(env_value tenantId)
client=$(env_value clientId)
secret=$(env_value clientSecret)
receiver=$(env_value receiverUrl)
app_credential() {
  field "$(api POST /app-credentials "{\"name\":\"$1\",\"client_id\":\"$client\",\"tenant_id\":\"$tenant\",\"client_secret\":\"$secret\"}")" id
}
cred_id=$(app_credential "Schemathesis app")
cred_spare_id=$(app_credential "Schemathesis app (to delete)")
cert_cred_id=$(field "$(api POST /app-credentials "{\"name\":\"Schemathesis app (certificate)\",\"client_id\":\"$client\",\"tenant_id\":\"$tenant\",\"credential_type\":\"certificate\"}")" id)
mailbox_id=$(field "$(api POST /mailboxes "{\"email\":\"podatelna@sandbox.example\",\"app_credential_id\":\"$cred_id\"}")" id)
mailbox_spare_id=$(field "$(api POST /mailboxes "{\"email\":\"info@sandbox.example\",\"app_credential_id\":\"$cred_id\"}")" id)
# Sign the mailbox in: the fake approves the login_hint at once, so following
# the authorization URL's redirects ends on the service's /oauth/callback.
authorization_url=$(field "$(api POST "/mailboxes/$mailbox_id/refresh" '{}')" authorization_url)
curl -sS -L -o /dev/null "$authorization_url" || sandbox_failed "fixture: the sign-in failed"
status=$(field "$(api GET "/mailboxes/$mailbox_id")" status)
[ "$status" = active ] || sandbox_failed "fixture: the mailbox is $status after the sign-in, not active"
bridge_password_id=$(field "$(api POST "/mailboxes/$mailbox_id/bridge-passwords" '{"name":"Scanner"}')" id)
bridge_password_spare_id=$(field "$(api POST "/mailboxes/$mailbox_id/bridge-passwords" '{"name":"Scanner (to delete)"}')" id)
webhook_id=$(field "$(api POST /webhooks "{\"url\":\"$receiver\"}")" id)
webhook_spare_id=$(field "$(api POST /webhooks "{\"url\":\"$receiver\"}")" id)
api POST "/webhooks/$webhook_id/test" >/dev/null
delivery_id=""
for _ in $(seq 50); do
  deliveries=$(api GET "/webhooks/$webhook_id/deliveries")
  delivery_id=$(field "$deliveries" items.0.delivery_id 2>/dev/null) && break
  sleep 0.1
done
[ -n "$delivery_id" ] || sandbox_failed "fixture: the test event made no delivery"
email_alert_id=$(field "$(api POST /email-alerts "{\"to\":[\"it@sandbox.example\"],\"sender_mailbox_id\":\"$mailbox_id\"}")" id)
email_alert_spare_id=$(field "$(api POST /email-alerts "{\"to\":[\"it@sandbox.example\"],\"sender_mailbox_id\":\"$mailbox_id\"}")" id)

# --- configuration ----------------------------------------------------------
config=$work/schemathesis.toml
export SCHEMATHESIS_ADMIN_TOKEN=$admin_token
SCHEMATHESIS_METRICS_TOKEN=$(env_value metricsToken)
export SCHEMATHESIS_METRICS_TOKEN
# operations NAME...: a TOML array of operation names.
operations() {
  local out="" name
  for name in "$@"; do out+="${out:+, }\"$name\""; done
  printf '[%s]' "$out"
}
# fixture ID-DICTIONARY OPERATION...: path.id of these operations is drawn
# from the dictionary nine times out of ten (else generated: unknown ids).
fixture() {
  local dictionary=$1
  shift
  cat <<EOF

[[operations]]
include-name = $(operations "$@")
parameters = { "path.id" = { dictionary = "$dictionary", probability = 0.9 } }
EOF
}
{
  cat <<EOF
# Written by scripts/schemathesis.sh for one run.
# No state kept between runs (it would land in .schemathesis/ of the tree).
[cache]
enabled = false
[auth.openapi.bearer]
bearer = "\${SCHEMATHESIS_ADMIN_TOKEN}"
[auth.openapi.metrics_token]
bearer = "\${SCHEMATHESIS_METRICS_TOKEN}"

# The ids the fuzzer fills in come from the fixtures (dictionaries below),
# not from earlier responses: with those, a DELETE picked the fixtures the
# other operations use (GET /webhooks lists them all) and most of the run hit
# 404. The stateful phase still chains its own creations through the links.
[phases.examples.extra-data-sources]
responses = false
[phases.coverage.extra-data-sources]
responses = false
[phases.fuzzing.extra-data-sources]
responses = false

# Values in bodies that the service checks beyond the spec's types, so that
# creations get through too: ids of existing resources (a mailbox's app
# credential, an alert's sender), the fake app registration, addresses, the
# sandbox's webhook receiver. Generated ones the rest of the time.
[parameters]
"body.app_credential_id" = { dictionary = "app_credential", probability = 0.9 }
"body.sender_mailbox_id" = { dictionary = "mailbox", probability = 0.9 }
"body.client_id" = { dictionary = "client_id", probability = 0.8 }
"body.tenant_id" = { dictionary = "tenant_id", probability = 0.8 }
"body.client_secret" = { dictionary = "client_secret", probability = 0.8 }
"body.email" = { dictionary = "address", probability = 0.5 }
"body.to[*]" = { dictionary = "address", probability = 0.7 }
# Without a network namespace: webhooks only ever point at the receiver.
"body.url" = { dictionary = "receiver", probability = $([ "$INBOXLINK_ST_NETNS" = 1 ] && echo 0.5 || echo 1.0) }

[dictionaries.client_id]
values = ["$client"]
[dictionaries.tenant_id]
values = ["$tenant", "sandbox.example"]
[dictionaries.client_secret]
values = ["$secret"]
[dictionaries.address]
values = ["faktury@sandbox.example", "it@sandbox.example", "helpdesk@sandbox.example", "ucetni@sandbox.example", "Podatelna@Sandbox.example"]
[dictionaries.receiver]
values = ["$receiver"]

[dictionaries.app_credential]
values = ["$cred_id", "$cert_cred_id"]
[dictionaries.app_credential_spare]
values = ["$cred_spare_id"]
[dictionaries.mailbox]
values = ["$mailbox_id"]
[dictionaries.mailbox_spare]
values = ["$mailbox_spare_id"]
[dictionaries.bridge_password]
values = ["$bridge_password_id"]
[dictionaries.bridge_password_spare]
values = ["$bridge_password_spare_id"]
[dictionaries.webhook]
values = ["$webhook_id"]
[dictionaries.webhook_spare]
values = ["$webhook_spare_id"]
[dictionaries.delivery]
values = ["$delivery_id"]
[dictionaries.email_alert]
values = ["$email_alert_id"]
[dictionaries.email_alert_spare]
values = ["$email_alert_spare_id"]
EOF
  fixture app_credential "GET /app-credentials/{id}" "PATCH /app-credentials/{id}" \
    "POST /app-credentials/{id}/admin-consent" "POST /app-credentials/{id}/certificate" \
    "GET /app-credentials/{id}/setup" "POST /app-credentials/{id}/verify"
  fixture app_credential_spare "DELETE /app-credentials/{id}"
  fixture mailbox "GET /mailboxes/{id}" "PATCH /mailboxes/{id}" \
    "GET /mailboxes/{id}/access-token" "GET /mailboxes/{id}/bridge-passwords" \
    "POST /mailboxes/{id}/bridge-passwords" "POST /mailboxes/{id}/check" \
    "POST /mailboxes/{id}/refresh"
  fixture mailbox_spare "DELETE /mailboxes/{id}"
  fixture webhook "GET /webhooks/{id}" "PATCH /webhooks/{id}" "GET /webhooks/{id}/deliveries" \
    "POST /webhooks/{id}/rotate-secret" "POST /webhooks/{id}/test"
  fixture webhook_spare "DELETE /webhooks/{id}"
  fixture email_alert "GET /email-alerts/{id}" "PATCH /email-alerts/{id}"
  fixture email_alert_spare "DELETE /email-alerts/{id}"
  cat <<EOF

# The check's body may be left out (the handler takes none as {}, on
# purpose: tests/tests/api/errors.rs), but the spec marks it required: utoipa
# makes a body optional only as Option<CheckRequest>, which would take the
# SDK's body_map(...) away from README's snippets. So sending no body is
# "a schema-violating request accepted" here, by design.
[[operations]]
include-name = $(operations "POST /mailboxes/{id}/check")
checks = { negative_data_rejection = { enabled = false } }

[[operations]]
include-name = $(operations "GET /mailboxes/{id}/bridge-passwords/{password_id}")
parameters = { "path.id" = { dictionary = "mailbox", probability = 0.9 }, "path.password_id" = { dictionary = "bridge_password", probability = 0.9 } }

[[operations]]
include-name = $(operations "DELETE /mailboxes/{id}/bridge-passwords/{password_id}")
parameters = { "path.id" = { dictionary = "mailbox", probability = 0.9 }, "path.password_id" = { dictionary = "bridge_password_spare", probability = 0.9 } }

[[operations]]
include-name = $(operations "POST /webhooks/{id}/deliveries/{delivery_id}/retry")
parameters = { "path.id" = { dictionary = "webhook", probability = 0.9 }, "path.delivery_id" = { dictionary = "delivery", probability = 0.9 } }
EOF
} >"$config"

# --- the run ----------------------------------------------------------------
mkdir -p "$report_dir"
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance
checks+=,negative_data_rejection,unsupported_method,allow_header_conformance
checks+=,missing_required_header,ignored_auth,use_after_free,ensure_resource_availability
st_args=(
  --config-file "$config" --no-color
  run "$base_url/openapi.json"
  --checks "$checks"
  --phases examples,coverage,fuzzing,stateful
  --max-examples "$max_examples"
  --max-time "$max_time"
  --workers 2
  --request-timeout 10
  --generation-database none
  --report junit,ndjson --report-dir "$report_dir"
)
echo "== st ${st_args[*]} $*" >&2
started=$SECONDS
st_status=0
"$st" "${st_args[@]}" "$@" | tee "$work/st.out" || st_status=$?
echo "== schemathesis took $((SECONDS - started)) s" >&2

# Totals from the summary's "Test cases:" line: "N generated, N passed" or
# "N generated, F found F unique failures[, N skipped]" (then passed = the
# generated ones less the failures and the skipped ones).
summary=$(grep -E '^ *[0-9]+ generated' "$work/st.out" | tail -n 1 || true)
number() { sed -nE "s/.* ([0-9]+) $1.*/\1/p" <<<"$summary"; }
generated=$(sed -nE 's/^ *([0-9]+) generated.*/\1/p' <<<"$summary")
generated=${generated:-0}
failed=$(number 'unique failure')
failed=${failed:-0}
skipped=$(number skipped)
passed=$(number passed)
passed=${passed:-$((generated - failed - ${skipped:-0}))}
[ "$st_status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
[ -z "${SCHEMATHESIS_TOTALS_FILE:-}" ] || echo "$passed $failed" >"$SCHEMATHESIS_TOTALS_FILE"
echo "schemathesis: $passed passed, $failed failed"
exit "$st_status"
