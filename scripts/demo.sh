#!/usr/bin/env bash
# The AgentKeys loop on loopback with embedded SQLite, narrated step by step:
# `agentkeys dev` runs the backend and the broker; the CLI does the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="$PWD/bin"
WORK=$(mktemp -d -t agentkeys-demo.XXXXXX)
# A private HOME so the demo never touches the user's own sessions.
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config" AGENTKEYS_SESSION_STORE=file
mkdir -p "$HOME"
ak() { "$BIN/agentkeys" "$@"; }

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '    $ %s\n' "$*"; }
cleanup() {
  if [[ -n "${DEV_PID:-}" ]] && kill -0 "$DEV_PID" 2>/dev/null; then
    kill -INT "$DEV_PID"; wait "$DEV_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step "Start the dev stack: backend + broker on loopback, SQLite and an ephemeral OIDC key in a temp dir, and an imitation of AWS STS"
show "agentkeys dev --backend-port 0 --broker-port 0 --fixture-site --fake-sts --json"
mkfifo "$WORK/dev.out"
"$BIN/agentkeys" dev --backend-port 0 --broker-port 0 --fixture-site --fake-sts --json >"$WORK/dev.out" 2>"$WORK/dev.err" &
DEV_PID=$!
DEV_JSON=""
while IFS= read -r line; do DEV_JSON+="$line"; [[ $line == "}" ]] && break; done <"$WORK/dev.out"
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" <<<"$DEV_JSON"; }
export AGENTKEYS_BACKEND_URL=$(field backend_url) AGENTKEYS_BROKER_URL=$(field broker_url)
[[ -n $AGENTKEYS_BACKEND_URL && -n $AGENTKEYS_BROKER_URL ]] || { echo "agentkeys dev did not start:"; cat "$WORK/dev.err"; exit 1; }
echo "    backend $AGENTKEYS_BACKEND_URL, broker $AGENTKEYS_BROKER_URL (OIDC issuer $(field issuer))"

step "A master logs in (dev mode: the identity comes from AGENTKEYS_AUTH_TOKEN, never from argv)"
show "AGENTKEYS_AUTH_TOKEN=demo@example.com agentkeys init"
AGENTKEYS_AUTH_TOKEN=demo@example.com ak init
ak whoami

step "The master creates an agent that may use OpenRouter and AWS (and keeps the agent's own session for its AWS identity)"
show "agentkeys agent create research-bot --services openrouter,aws --session-out \$WORK/research-bot.session"
ak agent create research-bot --services openrouter,aws --session-out "$WORK/research-bot.session"

step "The master stores the agent's OpenRouter key (read from stdin; sealed with AES-256-GCM at rest)"
KEY="sk-or-demo-$RANDOM$RANDOM$RANDOM"
show "printf %s \"\$KEY\" | agentkeys store research-bot openrouter"
printf %s "$KEY" | ak store research-bot openrouter
DATA=$(field data_dir)
if grep -rqs -- "$KEY" "$DATA"; then echo "FAIL: the key is stored in plain under $DATA"; exit 1; fi
echo "    (no file under the dev data directory contains the key in plain)"

step "The agent's command runs with OPENROUTER_API_KEY injected (the key is never in argv)"
show "agentkeys run research-bot --no-aws -- sh -c 'test -n \"\$OPENROUTER_API_KEY\"'"
ak run research-bot --no-aws -- sh -c 'test -n "$OPENROUTER_API_KEY" && echo "    OPENROUTER_API_KEY is set (${#OPENROUTER_API_KEY} characters)"'
show "agentkeys run research-bot --no-aws -- sh -c 'exit 7'   # the child's exit status is the CLI's"
set +e; ak run research-bot --no-aws -- sh -c 'exit 7'; rc=$?; set -e
echo "    exit status: $rc"
[[ $rc == 7 ]]

step "AWS the way SDKs expect: STS credentials for the agent's wallet (from the fake STS), masked in the output"
show "agentkeys run research-bot --session-file \$WORK/research-bot.session --region eu-west-1 -- sh -c 'echo …'"
ak run research-bot --session-file "$WORK/research-bot.session" --region eu-west-1 -- sh -c '
  echo "    AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_REGION=$AWS_REGION AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION"
  echo "    AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
  echo "    AWS_SESSION_TOKEN=$AWS_SESSION_TOKEN"
  echo "    OPENROUTER_API_KEY=$OPENROUTER_API_KEY   (even base64: $(printf %s "$OPENROUTER_API_KEY" | base64 -w0))"'
echo "    (masking is on by default; --no-masking turns it off)"

step "An env file with references: the agent argument becomes optional, values resolve before the command starts"
cat >"$WORK/app.env" <<'ENV'
# app.env: safe to commit, it holds no secret
APP_MODE=demo
LLM_API_KEY=agentkeys://research-bot/openrouter
ENV
sed 's/^/    | /' "$WORK/app.env"
show "agentkeys run --env-file app.env -- sh -c 'echo \$APP_MODE \$LLM_API_KEY'"
ak run --env-file "$WORK/app.env" -- sh -c 'echo "    APP_MODE=$APP_MODE LLM_API_KEY=$LLM_API_KEY (${#LLM_API_KEY} characters)"'
printf 'X=agentkeys://research-bot/openai\n' >"$WORK/bad.env"
show "agentkeys run --env-file bad.env -- true   # openai is outside the agent's scope: refused before the command starts"
if ak run --env-file "$WORK/bad.env" -- true; then echo "FAIL: out-of-scope reference resolved"; exit 1; fi

step "inject: a config file from a template, written 0600 atomically"
cat >"$WORK/config.tmpl" <<'TMPL'
llm:
  api_key: {{ agentkeys://research-bot/openrouter }}
  image: {{ .Values.image }}   # other {{ }} is left alone
TMPL
sed 's/^/    | /' "$WORK/config.tmpl"
show "agentkeys inject -i config.tmpl -o config.yaml"
ak inject -i "$WORK/config.tmpl" -o "$WORK/config.yaml"
echo "    $(stat -c '%A' "$WORK/config.yaml") config.yaml; holds the key: $(grep -qF -- "$KEY" "$WORK/config.yaml" && echo yes || echo no)"
grep -q '{{ .Values.image }}' "$WORK/config.yaml"

step "A service outside the agent's scope is refused"
show "agentkeys scope get research-bot"
ak scope get research-bot
show "printf x | agentkeys store research-bot openai   # the master may store it…"
printf x | ak store research-bot openai
show "agentkeys run research-bot --no-aws --env OPENAI_API_KEY=openai -- true   # …but the agent may not use it"
if ak run research-bot --no-aws --env OPENAI_API_KEY=openai -- true; then echo "FAIL: out-of-scope service injected"; exit 1; fi

step "The provisioner signs the agent up itself (headless Chromium, a local imitation of OpenRouter's site)"
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then
  export AGENTKEYS_OPENROUTER_SIGNUP_URL=$(field AGENTKEYS_OPENROUTER_SIGNUP_URL) AGENTKEYS_OPENROUTER_API_URL=$(field AGENTKEYS_OPENROUTER_API_URL)
  echo "    the stored demo key fails the site's key check, so the provisioner signs up again:"
  echo "    fresh mock inbox, sign-up form, code from the e-mail, new key, verified with GET /api/v1/key, stored sealed"
  show "agentkeys provision openrouter --agent research-bot"
  ak provision openrouter --agent research-bot
  show "agentkeys run research-bot --no-aws -- sh -c '…'   # the agent now gets the provisioned key"
  ak run research-bot --no-aws -- sh -c 'case "$OPENROUTER_API_KEY" in sk-or-v1-*) echo "    OPENROUTER_API_KEY is the provisioned sk-or-v1-… key";; *) exit 1;; esac'
else
  echo "FAIL: no Chromium on PATH; run: bash scripts/deps.sh (installs Debian's chromium)"; exit 1
fi

step "Mint an OIDC JWT through the broker and verify it against the broker's JWKS"
if ak token --help >/dev/null 2>&1; then
  show "agentkeys token oidc --verify | wc -c   # as the master here; an agent uses its own session"
  ak token oidc --verify | wc -c
else
  echo "    not yet: the CLI has no 'token' command in this build"
fi

step "The master reviews the audit log"
show "agentkeys usage --limit 14"
ak usage --limit 14

step "The master revokes the agent; its sessions stop working at once"
show "agentkeys revoke research-bot"
ak revoke research-bot

step "Stop the dev stack (Ctrl-C: drain, then exit)"
kill -INT "$DEV_PID"; wait "$DEV_PID"; DEV_PID=
tail -n 1 "$WORK/dev.err"
echo; echo "demo: ok"
