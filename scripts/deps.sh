#!/usr/bin/env bash
# Installs the system packages `make demo` and `make test` need on a Debian
# machine: Chromium (the provisioner's browser), curl (the demo script) and
# nginx (the end-to-end test of the shipped reverse-proxy site; the test runs
# its own foreground instance, the package's service is not needed) and sqlite3
# (the runbook's ledger backup, which a test runs), iproute2 (the test that runs
# the setup script for real joins two network namespaces), python3-boto3 (the
# tests of the AWS credential endpoints run boto3's default chain against them),
# gdb (its gcore dumps the gateway test's agent, whose core must not hold the key).
# Runs apt-get as root, or through sudo when that works without a password;
# otherwise it stops and prints the one command that installs them.
# Usage: scripts/deps.sh [demo|test]   (default test; no-op when everything is
# present). `demo` needs only Chromium and curl.
set -euo pipefail
what=${1:-test}

missing=()
have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
    command -v google-chrome >/dev/null 2>&1
}
have_chromium || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [[ $what != demo ]]; then
  command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
  command -v ip >/dev/null 2>&1 || [[ -x /usr/sbin/ip ]] || missing+=(iproute2)
  python3 -c 'import boto3' >/dev/null 2>&1 || missing+=(python3-boto3)
  command -v gcore >/dev/null 2>&1 || missing+=(gdb)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

cmd="apt-get update && apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]}; this is not a Debian-like system: install them with your package manager and re-run" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]]; then
  run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run=(sudo -n)
else
  echo "deps: missing ${missing[*]}. Install them once, then re-run:" >&2
  echo "    sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "deps: installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
