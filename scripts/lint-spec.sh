#!/usr/bin/env bash
# Lints the committed OpenAPI spec (openapi/inboxlink.json) with Redocly CLI:
# the recommended rules, every warning raised to an error (redocly.yaml:
# `recommended-strict`). Fails on any problem, also on one that a lint-ignore
# file would hide or a rule left at `warn`: the JSON report's totals must all
# be 0. Part of scripts/test.sh.
#
# @redocly/cli is installed locally under .tools/ (npm, gitignored) when it is
# missing or of another version. 1.34 is the newest line that runs on the
# Node.js 18 of Debian 12 (2.x needs Node >= 20.19).
set -euo pipefail
cd "$(dirname "$0")/.."

REDOCLY_VERSION=1.34.20
redocly=.tools/node_modules/.bin/redocly
spec=openapi/inboxlink.json
# No usage data sent to Redocly, no update check.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "lint-spec.sh: \`$tool\` is missing: run scripts/install-test-deps.sh (installs nodejs and npm)" >&2
    exit 1
  fi
done
if [ ! -x "$redocly" ] || [ "$("$redocly" --version 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
  echo "== installing @redocly/cli@$REDOCLY_VERSION into .tools/ (npm)" >&2
  npm install --prefix .tools --no-audit --no-fund --loglevel=error --save-exact \
    "@redocly/cli@$REDOCLY_VERSION" >&2
fi

# The readable report (exits non-zero on an error)...
status=0
"$redocly" lint --config redocly.yaml "$spec" || status=$?
# ...and the counts, which also see warnings and ignored problems.
read -r errors warnings ignored < <("$redocly" lint --config redocly.yaml --format=json "$spec" 2>/dev/null |
  node -e '
    let text = "";
    process.stdin.on("data", d => (text += d)).on("end", () => {
      const t = JSON.parse(text).totals;
      console.log(`${t.errors} ${t.warnings} ${t.ignored}`);
    });
  ') || true
if [ "${errors:-x}" != 0 ] || [ "${warnings:-x}" != 0 ] || [ "${ignored:-x}" != 0 ]; then
  echo "lint-spec.sh: $spec: ${errors:-?} error(s), ${warnings:-?} warning(s), ${ignored:-?} ignored" >&2
  [ "$status" -ne 0 ] || status=1
fi
[ "$status" -ne 0 ] || echo "lint-spec.sh: $spec passes redocly lint (recommended, warnings as errors)" >&2
exit "$status"
