#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (as root, or
# with sudo): libpq to build the PostgreSQL driver (the default build of
# inboxlink has none; the test crate turns on its feature `postgres`),
# PostgreSQL's server binaries for the throw-away test cluster, Dovecot (IMAP + SMTP
# submission) for the mail-server tests and the sandbox, which start their own
# private Dovecot on high ports, Python and curl (the clients of the webhook
# and bridge tests), and Node.js + npm for newman (installed by
# scripts/newman.sh into .tools/). Does nothing when all is there.
set -euo pipefail

packages=(libpq-dev postgresql-15 dovecot-imapd dovecot-submissiond)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v python3 >/dev/null || missing+=(python3)
# scripts/schemathesis.sh installs schemathesis into a virtualenv (venv + ensurepip).
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi
# The bridge's tests log in with curl (imaps://, smtp:// with --ssl-reqd), as administrators do.
command -v curl >/dev/null || missing+=(curl)
# Node.js and npm for newman (scripts/newman.sh installs newman itself into .tools/).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v cc >/dev/null || missing+=(gcc libc6-dev)   # C parts of aws-lc, SQLite, libpq
# rustfmt and clippy come with the toolchain; add them if a minimal profile left them out.
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

# The tests run their own Dovecot from a private config; the system one that
# Debian's postinst may start (ports 143/993, /etc/dovecot) is not needed.
stop_system_dovecot() {
  [ -f /run/dovecot/master.pid ] || return 0
  $sudo service dovecot stop >/dev/null 2>&1 || $sudo kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
  fi
  $sudo update-rc.d dovecot disable >/dev/null 2>&1 || true
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${missing[*]}" >&2
  log=$(mktemp)
  # Quiet unless something fails (debconf chatters on stderr otherwise).
  if ! { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi
stop_system_dovecot
