#!/usr/bin/env bash
# Install the npm `jose` peer used by e2e/jose_test.go: `npm ci`
# in e2e/jose from its committed package-lock.json (jose pinned exactly).
# Idempotent; installs Debian's nodejs/npm first when node is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "npm-e2e: node $(node --version) is too old for jose 6 (need >= 20)" >&2
  exit 1
fi
cd e2e/jose
timeout 300 npm ci --no-audit --no-fund --loglevel=error
node -e 'import("jose").then(() => console.log("npm-e2e: jose " + require("./node_modules/jose/package.json").version + " installed in e2e/jose"))'
