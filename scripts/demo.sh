#!/usr/bin/env bash
# The AgentKeys loop on loopback with embedded SQLite, narrated step by step.
# Parts that later issues build (CLI, broker, daemon) say "not yet".
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=bin
DATA=$(mktemp -d -t agentkeys-demo.XXXXXX)
PORT=${AGENTKEYS_DEMO_PORT:-18090}
URL="http://127.0.0.1:$PORT"
LOG="$DATA/backend.log"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n1; }
cleanup() {
  if [[ -n "${PID:-}" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

step "Start agentkeys-backend on $URL (SQLite + seal key in a fresh temp dir)"
"$BIN/agentkeys-backend" --listen "127.0.0.1:$PORT" --data-dir "$DATA" 2>"$LOG" &
PID=$!
for _ in $(seq 1 50); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
curl -fsS "$URL/health"; echo
echo "data dir: $(ls "$DATA" | tr '\n' ' ')(seal.key is mode $(stat -c %a "$DATA/seal.key"))"

step "A master logs in (dev mode: any identity string names a master)"
resp=$(curl -fsS -X POST "$URL/session/create" -H 'Content-Type: application/json' -d '{"auth_token":"demo@example.com"}')
MASTER=$(json_field session <<<"$resp"); MWALLET=$(json_field wallet <<<"$resp")
echo "master wallet: $MWALLET (session token kept in a shell variable, never printed)"

step "The master creates an agent scoped to openrouter"
resp=$(curl -fsS -X POST "$URL/session/child" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d '{"scope":{"services":["openrouter"],"read_only":false}}')
AGENT=$(json_field session <<<"$resp"); AWALLET=$(json_field wallet <<<"$resp")
echo "agent wallet: $AWALLET"

step "The master stores the agent's OpenRouter key (sealed with AES-256-GCM at rest)"
KEY="sk-or-demo-$RANDOM$RANDOM"
curl -fsS -X POST "$URL/credential/store" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d "{\"agent_id\":\"$AWALLET\",\"service\":\"openrouter\",\"ciphertext\":\"$(printf %s "$KEY" | base64)\"}"; echo
if grep -q "$KEY" "$DATA"/backend.db* 2>/dev/null; then echo "FAIL: key stored in plain"; exit 1; fi
echo "the database files do not contain the key in plain"

step "The agent reads it back (in scope)"
got=$(curl -fsS "$URL/credential/read?agent_id=$AWALLET&service=openrouter" -H "Authorization: Bearer $AGENT" | json_field ciphertext | base64 -d)
[[ "$got" == "$KEY" ]] && echo "agent received the key ($(printf %s "$got" | wc -c) bytes)"

step "The agent asks for a service outside its scope: refused"
curl -sS "$URL/credential/read?agent_id=$AWALLET&service=openai" -H "Authorization: Bearer $AGENT"; echo

step "The master reviews the audit log"
curl -fsS "$URL/audit/query?limit=10" -H "Authorization: Bearer $MASTER" | sed 's/},{/},\n  {/g'; echo

step "The master revokes the agent; its session stops working at once"
curl -fsS -X POST "$URL/session/revoke" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d "{\"target_wallet\":\"$AWALLET\"}"; echo
curl -sS "$URL/session/validate" -H "Authorization: Bearer $AGENT"; echo

step "Not yet: agentkeys CLI and 'agentkeys dev' (issue 4), broker OIDC/AWS minting (issue 3), daemon + MCP (issue 6)"

step "Stop the backend (SIGTERM: drain, then exit)"
kill -TERM "$PID"; wait "$PID"; PID=
tail -n 2 "$LOG"
echo; echo "demo: ok"
