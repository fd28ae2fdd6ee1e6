#!/usr/bin/env bash
# The sandbox, in one command: the real service on http://127.0.0.1:8080 with
# a fake Microsoft sign-in (fake Entra ID), a private Dovecot (IMAP + SMTP)
# and a fresh SQLite database. Prints the tokens, the fake app registration
# and the mailboxes to use, and runs a webhook receiver webhooks may point at;
# Ctrl-C stops it all. Not for production.
#
#   scripts/sandbox.sh                 # port 8080, Dovecot (needs root and
#                                      # sudo scripts/install-test-deps.sh once)
#   scripts/sandbox.sh --no-mail       # without Dovecot
#   scripts/sandbox.sh --receiver      # print what its webhook receiver gets
#   scripts/sandbox.sh --port 9090 --data-dir ./sandbox-data
#   scripts/sandbox.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
# INBOXLINK_SANDBOX_BIN: a sandbox binary already built (scripts/newman.sh
# under scripts/test.sh) instead of `cargo run`.
[ -z "${INBOXLINK_SANDBOX_BIN:-}" ] || exec "$INBOXLINK_SANDBOX_BIN" "$@"
# cargo run replaces itself with the sandbox (exec), so signals reach it directly.
exec cargo run -q -p inboxlink-tests --bin inboxlink-sandbox -- "$@"
