#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (as root, or
# with sudo): libpq to build the PostgreSQL driver, and PostgreSQL's server
# binaries for the throw-away test cluster. Does nothing when all is there.
set -euo pipefail

packages=(libpq-dev postgresql-15)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v python3 >/dev/null || missing+=(python3)
command -v cc >/dev/null || missing+=(gcc libc6-dev)   # C parts of aws-lc, SQLite, libpq
# rustfmt and clippy come with the toolchain; add them if a minimal profile left them out.
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "install-test-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
