#!/usr/bin/env bash
# Install the real MCP peers for e2e/mcp_test.go into e2e/mcp/node_modules:
# the official TypeScript SDK (@modelcontextprotocol/sdk) and the MCP
# Inspector CLI (@modelcontextprotocol/inspector), at the exact versions in
# e2e/mcp/package.json / package-lock.json. Local install only (`npm ci`),
# never global.
#
# Idempotent: when node_modules already matches package-lock.json (npm keeps
# a copy of the lock it installed at node_modules/.package-lock.json), this
# does nothing; otherwise it runs `npm ci`, which deletes and reinstalls.
#
# Usage: scripts/ci/npm-mcp.sh     (then: AGENTKEYS_REQUIRE_E2E=1 go test ./e2e/)
# Env:   NPM_MCP_TIMEOUT (default 300s)
set -euo pipefail
cd "$(dirname "$0")/../../e2e/mcp"

log() { printf 'npm-mcp: %s\n' "$*" >&2; }
command -v node >/dev/null || { log "node not found on PATH"; exit 1; }
command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }

installed() {
  [[ -f node_modules/.package-lock.json ]] &&
    [[ -f node_modules/@modelcontextprotocol/sdk/package.json ]] &&
    [[ -x node_modules/.bin/mcp-inspector ]] &&
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
  log "up to date ($(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version') sdk, $(node -p 'require("./node_modules/@modelcontextprotocol/inspector/package.json").version') inspector)"
  exit 0
fi

# The inspector's postinstall is a no-op when installed as a dependency
# (and npm 11 does not run it without approval anyway): skip scripts.
# It declares node >=22.19 but its CLI works on node 20 (verified by the
# e2e test), so engine-strict stays off.
log "npm ci in $(pwd)"
timeout "${NPM_MCP_TIMEOUT:-300}" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
installed || { log "install incomplete"; exit 1; }
log "installed"
