#!/usr/bin/env bash
# Build the SeaweedFS `weed` binary used by the federation end-to-end test
# (e2e/federation_test.go) and print its path on stdout (last line).
#
# SeaweedFS is a test peer, never a dependency: `go install …/weed@version`
# refuses its module because of the `replace` directive in its go.mod, so
# this builds it from a throwaway module OUTSIDE the repository (it is a test peer, never a dependency):
#   require github.com/seaweedfs/seaweedfs <version>
#   + the same replace lines as seaweedfs's own go.mod
# and caches the binary at $AGENTKEYS_CACHE/weed-<version> (default
# ~/.cache/agentkeys) so later runs on the same machine reuse it.
#
# Idempotent: when the cached binary exists and runs, nothing is rebuilt.
# Usage:  export AGENTKEYS_WEED_BIN="$(scripts/ci/build-seaweedfs.sh)"
# Env:    SEAWEEDFS_VERSION (module version; default pinned below)
#         AGENTKEYS_CACHE   (cache directory)
#         WEED_BUILD_TIMEOUT (default 40m)
set -euo pipefail

# SeaweedFS tags are not semver ("4.xx"), so the module only has
# pseudo-versions; pin one that was verified with the federation test.
VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
CACHE="${AGENTKEYS_CACHE:-${HOME:?}/.cache/agentkeys}"
OUT="$CACHE/weed-$VERSION"
TIMEOUT="${WEED_BUILD_TIMEOUT:-40m}"

log() { printf 'build-seaweedfs: %s\n' "$*" >&2; }

if ! [[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  log "SEAWEEDFS_VERSION=$VERSION is not a Go module version"; exit 2
fi
command -v go >/dev/null || { log "go not found on PATH"; exit 1; }

usable() { [[ -x "$1" ]] && timeout 20 "$1" version >/dev/null 2>&1; }

mkdir -p "$CACHE"
if usable "$OUT"; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

# One build at a time per cache directory.
exec 9>"$CACHE/.weed-build.lock"
if command -v flock >/dev/null; then flock -w 3600 9; fi
if usable "$OUT"; then echo "$OUT"; exit 0; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/agentkeys-weed-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The upstream go.mod, for its go directive and replace lines.
gomod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "$gomod" ]] || { log "could not download github.com/seaweedfs/seaweedfs@$VERSION"; exit 1; }
godir="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -n1)"

{
  echo "module agentkeys.local/weed-build"
  echo
  echo "go ${godir:-1.26}"
  echo
  echo "require github.com/seaweedfs/seaweedfs $VERSION"
  echo
  # Single-line `replace a => b v` and `replace ( … )` blocks; comments and
  # replacements by local path (a developer's checkout) are dropped.
  awk '
    /^[[:space:]]*\/\// { next }
    /^replace[[:space:]]*\($/ { inblock = 1; next }
    inblock && /^\)/ { inblock = 0; next }
    inblock { line = $0; sub(/\/\/.*/, "", line); if (line ~ /=>[[:space:]]*[^.\/[:space:]][^[:space:]]*[[:space:]]+v/) print "replace " line; next }
    /^replace[[:space:]]/ { line = $0; sub(/\/\/.*/, "", line); if (line ~ /=>[[:space:]]*[^.\/[:space:]][^[:space:]]*[[:space:]]+v/) print line }
  ' "$gomod"
} >"$work/go.mod"
log "building weed $VERSION in $work (several minutes the first time)"
sed 's/^/build-seaweedfs:   go.mod: /' "$work/go.mod" >&2

(
  cd "$work"
  CGO_ENABLED=0 GOFLAGS=-mod=mod timeout "$TIMEOUT" \
    go build -trimpath -ldflags "-s -w" -o "$work/weed" github.com/seaweedfs/seaweedfs/weed
)
usable "$work/weed" || { log "built binary does not run"; exit 1; }
mv -f "$work/weed" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
log "built $OUT"
echo "$OUT"
