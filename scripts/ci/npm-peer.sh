#!/usr/bin/env bash
# Install the npm peers of one end-to-end test directory into its own
# node_modules, at the exact versions in its package.json / package-lock.json.
# Local install only (`npm ci`), never global.
#
#   e2e/mcp     the official MCP TypeScript SDK (@modelcontextprotocol/sdk) and
#               the MCP Inspector CLI (@modelcontextprotocol/inspector), for
#               e2e/mcp_test.go
#   e2e/openai  the official OpenAI Node SDK (npm `openai`), for
#               e2e/gateway_test.go, which runs it through `agentkeys run --gateway`
#
# Idempotent: when node_modules already matches package-lock.json (npm keeps
# a copy of the lock it installed at node_modules/.package-lock.json) and
# every direct dependency and its commands are present, this does nothing;
# otherwise it runs `npm ci`, which deletes and reinstalls.
#
# Usage: scripts/ci/npm-peer.sh e2e/mcp      (then: AGENTKEYS_REQUIRE_E2E=1 go test ./e2e/)
#        scripts/ci/npm-peer.sh e2e/openai
# Env:   NPM_PEER_TIMEOUT (default 300s)
set -euo pipefail
[[ $# -eq 1 ]] || { printf 'usage: %s e2e/<dir>\n' "$0" >&2; exit 2; }
cd "$(dirname "$0")/../../$1"
name="npm-peer $1"

log() { printf '%s: %s\n' "$name" "$*" >&2; }
command -v node >/dev/null || { log "node not found on PATH"; exit 1; }
command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }

# installed exits 0 when node_modules matches package-lock.json and holds every
# direct dependency of package.json with its commands in node_modules/.bin.
installed() {
  [[ -f node_modules/.package-lock.json ]] &&
    node -e '
      const fs = require("fs");
      const want = JSON.parse(fs.readFileSync("package-lock.json")).packages;
      const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json")).packages;
      for (const [k, v] of Object.entries(want)) {
        if (k === "" || v.optional || v.dev) continue;
        if (!have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity) process.exit(1);
      }
      for (const dep of Object.keys(JSON.parse(fs.readFileSync("package.json")).dependencies || {})) {
        const pkg = JSON.parse(fs.readFileSync("node_modules/" + dep + "/package.json"));
        const bins = typeof pkg.bin === "string" ? [pkg.name.split("/").pop()] : Object.keys(pkg.bin || {});
        for (const b of bins) fs.accessSync("node_modules/.bin/" + b, fs.constants.X_OK);
      }
    ' 2>/dev/null
}

# versions prints "dep version, ..." for the direct dependencies.
versions() {
  node -p '
    const fs = require("fs");
    Object.keys(JSON.parse(fs.readFileSync("package.json")).dependencies || {})
      .map(d => d + " " + JSON.parse(fs.readFileSync("node_modules/" + d + "/package.json")).version)
      .join(", ")
  '
}

if installed; then
  log "up to date ($(versions))"
  exit 0
fi

# Install scripts are skipped: the MCP inspector's postinstall is a no-op when
# installed as a dependency (and npm 11 does not run it without approval
# anyway). The inspector declares node >=22.19 but its CLI works on node 20
# (verified by the e2e test), so engine-strict stays off.
log "npm ci in $(pwd)"
timeout "${NPM_PEER_TIMEOUT:-300}" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
installed || { log "install incomplete"; exit 1; }
log "installed $(versions)"
