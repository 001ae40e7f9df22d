#!/usr/bin/env bash
# Mutation testing of the security-critical packages with gremlins
# (installed into bin/tools on first use), one package at a time, with a
# summary line per package and a closing table. Each argument is
# PACKAGE:MIN_EFFICACY (efficacy = killed / (killed + lived), in percent);
# the run fails when a package is below its minimum.
# Usage: scripts/mutate.sh ./internal/seal:95 ./internal/backend:85 ...
# Equivalent mutants (no behaviour can tell them apart) are listed with the
# reason in scripts/mutate-equivalent.txt; they are printed and left out of
# the efficacy.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
# Test results must not come from the go test cache: gremlins times each
# mutant against its coverage run, and a cached run (milliseconds) makes
# every mutant time out, which counts as neither killed nor lived.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1"
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
  counts=$(grep -E '^Killed: ' "$log" | tail -n 1)
  killed=$(sed -n 's/^Killed: \([0-9]*\), Lived: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
  lived=$(sed -n 's/^Killed: \([0-9]*\), Lived: \([0-9]*\).*/\2/p' "$log" | tail -n 1)
  # Living mutants listed as equivalent (with the reason) in
  # scripts/mutate-equivalent.txt are shown and left out of the efficacy.
  equiv=0
  while read -r _ status mutator _ at; do
    [[ $status == LIVED ]] || continue
    if grep -qE "^$pkg $at $mutator " scripts/mutate-equivalent.txt; then
      echo "  equivalent (listed): $mutator at $at — $(grep -E "^$pkg $at $mutator " scripts/mutate-equivalent.txt | head -n 1 | cut -d' ' -f4- | sed 's/^ *//')"
      equiv=$((equiv + 1))
    fi
  done < <(sed -n 's/^ *\(LIVED\) \([A-Z_]*\) at \(.*\)$/x \1 \2 at \3/p' "$log")
  rm -f "$log"
  eff=""
  if [[ -n $killed && -n $lived ]]; then
    eff=$(awk -v k="$killed" -v l="$lived" -v e="$equiv" 'BEGIN{d=k+l-e; if (d<=0) print "100.00"; else printf "%.2f", 100*k/d}')
    counts="$counts, equivalent (listed): $equiv"
  fi
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
echo "mutation testing summary (efficacy = killed / (killed + lived - listed equivalent)):"
printf '%-28s %8s %8s  %s\n' package efficacy minimum verdict
for r in "${rows[@]}"; do echo "$r"; done
exit $fail
