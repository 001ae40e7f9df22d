#!/usr/bin/env bash
# Install the official OpenAI Node SDK (npm `openai`, pinned exactly in
# e2e/openai/package.json and package-lock.json) for e2e/gateway_test.go,
# which runs it through `agentkeys run --gateway`. Local install only
# (`npm ci`), never global.
#
# Idempotent: when node_modules already matches package-lock.json, this
# does nothing; otherwise `npm ci` deletes and reinstalls.
#
# Usage: scripts/ci/npm-openai.sh   (then: AGENTKEYS_REQUIRE_E2E=1 go test -run TestGatewayOpenAISDK ./e2e/)
# Env:   NPM_OPENAI_TIMEOUT (default 300s)
set -euo pipefail
cd "$(dirname "$0")/../../e2e/openai"

log() { printf 'npm-openai: %s\n' "$*" >&2; }
command -v node >/dev/null || { log "node not found on PATH"; exit 1; }
command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }

installed() {
  [[ -f node_modules/.package-lock.json ]] &&
    [[ -f node_modules/openai/package.json ]] &&
    node -e '
      const fs = require("fs");
      const want = JSON.parse(fs.readFileSync("package-lock.json")).packages;
      const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json")).packages;
      for (const [k, v] of Object.entries(want)) {
        if (k === "" || v.optional || v.dev) continue;
        if (!have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity) process.exit(1);
      }
    ' 2>/dev/null
}

if installed; then
  log "up to date (openai $(node -p 'require("./node_modules/openai/package.json").version'))"
  exit 0
fi
log "npm ci in $(pwd)"
timeout "${NPM_OPENAI_TIMEOUT:-300}" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
installed || { log "install incomplete"; exit 1; }
log "installed openai $(node -p 'require("./node_modules/openai/package.json").version')"
