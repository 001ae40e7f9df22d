#!/usr/bin/env bash
# Mutation testing of the security-critical packages with gremlins
# (installed into bin/tools on first use), one package at a time, with a
# summary line per package and a closing table. Each argument is
# PACKAGE:MIN_EFFICACY (efficacy = killed / (killed + lived), in percent);
# the run fails when a package is below its minimum.
# Usage: scripts/mutate.sh ./internal/seal:95 ./internal/backend:85 ...
# Known equivalent mutants (no behaviour can tell them apart) are listed
# in docs/mutation.md with the reason; they are not excluded from the count.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
GREMLINS_VERSION=v0.6.0
# `go install` builds report version "dev": the version is in the file name.
tools="$PWD/bin/tools"
gremlins="$tools/gremlins-$GREMLINS_VERSION"
if [[ ! -x $gremlins ]]; then
  mkdir -p "$tools/.install"
  GOBIN="$tools/.install" "$GO" install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
  mv "$tools/.install/gremlins" "$gremlins"
fi
# On a loaded machine a slow test run would count as a timed-out mutant
# (which gremlins does not count as lived): a generous coefficient keeps a
# living mutant from hiding behind a timeout.
workers=${MUTATE_WORKERS:-$(( $(nproc) > 1 ? $(nproc) / 2 : 1 ))}

declare -a rows
fail=0
for arg in "$@"; do
  pkg=${arg%%:*}
  min=${arg##*:}
  log=$(mktemp)
  echo "== gremlins on $pkg (minimum efficacy $min %)"
  set +e
  "$gremlins" unleash --workers "$workers" --timeout-coefficient "${MUTATE_TIMEOUT_COEFFICIENT:-10}" \
    --output-statuses lt "$pkg" 2>&1 | tee "$log"
  set -e
  eff=$(sed -n 's/^Test efficacy: \([0-9.]*\)%.*/\1/p' "$log" | tail -n 1)
  counts=$(grep -E '^Killed: ' "$log" | tail -n 1)
  rm -f "$log"
  if [[ -z $eff ]]; then
    rows+=("$(printf '%-28s %8s %8s  %s' "$pkg" "-" "$min" "gremlins did not report (error above)")")
    fail=1
    continue
  fi
  verdict=ok
  if awk -v e="$eff" -v m="$min" 'BEGIN{exit !(e+0 < m+0)}'; then
    verdict="BELOW MINIMUM"
    fail=1
  fi
  rows+=("$(printf '%-28s %7s%% %7s%%  %s  (%s)' "$pkg" "$eff" "$min" "$verdict" "$counts")")
done

echo
echo "mutation testing summary (efficacy = killed / (killed + lived)):"
printf '%-28s %8s %8s  %s\n' package efficacy minimum verdict
for r in "${rows[@]}"; do echo "$r"; done
exit $fail
