#!/usr/bin/env bash
# cargo-deny's licence and ban checks (deny.toml): the dependency tree's
# licences fit Apache-2.0, no OpenSSL or native-tls, one version each of the
# HTTP and TLS stacks. Part of the test command (scripts/test.sh).
#
# cargo-deny is installed from crates.io into .tools/ (gitignored) when
# missing or not the pinned version: `cargo install --locked --debug`, about
# a minute on 2 cores (its release profile, fat LTO with one codegen unit,
# takes over three; the checks run in seconds either way); later runs reuse it. Advisories are not checked (their
# database cannot be fetched from the machines this runs on), and cargo-deny
# runs --offline: cargo fetches the crates first, cargo-deny fetches nothing.
# Findings are printed without the inclusion graphs; to see why a crate is in
# the tree: `.tools/bin/cargo-deny --offline check bans`. Extra arguments go
# to `cargo deny check`.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
export PATH="$PWD/.tools/bin:$PATH"

if [ "$(cargo-deny --version 2>/dev/null || true)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  echo "== installing cargo-deny $CARGO_DENY_VERSION into .tools/ (cargo install, a few minutes)" >&2
  cargo install --locked --debug --quiet --root .tools --version "$CARGO_DENY_VERSION" cargo-deny >&2
fi

# Every platform's crates (cargo-deny checks them all), from the lockfile.
cargo fetch --locked --quiet
cargo deny --locked --offline check --hide-inclusion-graph "$@" licenses bans
