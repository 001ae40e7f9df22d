#!/usr/bin/env bash
# Issue 8's end-to-end proofs against peers nobody here wrote, in one step:
# SeaweedFS STS federation (e2e/federation_test.go) and npm jose
# verification (e2e/jose_test.go). Builds/caches weed, installs jose, then
# runs the two tests with skipping forbidden. Idempotent; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."

AGENTKEYS_WEED_BIN="$(scripts/ci/build-seaweedfs.sh)"
export AGENTKEYS_WEED_BIN
scripts/ci/npm-e2e.sh
AGENTKEYS_REQUIRE_E2E=1 go test -race -count=1 -timeout 10m \
  -run '^(TestFederationSeaweedFS|TestJoseVerifiesBrokerJWT|TestSetupBrokerHost)$' -v ./e2e/
