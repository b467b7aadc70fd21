#!/usr/bin/env bash
# The registry's API against its own description: schemathesis (from PyPI,
# in .venv, made here when missing) generates requests from GET
# /openapi.json of a live registry and checks every answer — no 5xx, status
# codes and bodies as described, errors with the JSON error body, schema-
# valid requests accepted and invalid ones refused. Bounded: at most
# EXAMPLES cases per operation and SECONDS in all.
#
#   scripts/contract.sh [REGISTRY_BINARY]   (default target/debug/beacon-registry)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bin=${1:-target/debug/beacon-registry}
examples=${EXAMPLES:-20}
seconds=${SECONDS_BUDGET:-60}
schemathesis_version=4.32.5

if [[ ! -x .venv/bin/schemathesis ]] || ! .venv/bin/schemathesis --version | grep -q "$schemathesis_version"; then
  echo "installing schemathesis $schemathesis_version into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q "schemathesis==$schemathesis_version"
fi

log=$(mktemp)
"$bin" --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
url=$(wait_listening "$pid" "$log" beacon-registry)
echo "schemathesis against $url/openapi.json: $examples examples per operation, at most $seconds s"
.venv/bin/schemathesis --config-file registry/tests/contract/schemathesis.toml \
  run "$url/openapi.json" --checks all -n "$examples" --max-time "$seconds" \
  --seed 1 --generation-deterministic --no-color
