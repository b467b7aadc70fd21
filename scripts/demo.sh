#!/usr/bin/env bash
# make demo: registry, three ratings instances and the market, in release
# mode, on the embedded in-memory store. Shows the market's log (the seed's
# "WINDOW 1") until ^C, then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

export RUN_DIR=${RUN_DIR:-run}
BIN=${BIN:-target/release}
export RATINGS_BIN=$BIN/beacon-ratings
mkdir -p "$RUN_DIR"
pids=()

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping the demo..."
  scripts/ratings.sh stop || true
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
  done
  echo "stopped."
}
trap cleanup EXIT
trap 'exit 0' INT TERM

start_bg() { # NAME LOG COMMAND... : starts in the background, waits until it listens
  local name=$1 log=$2 url
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  url=$(wait_listening "$!" "$log" "$name") || exit 1
  echo "started $name on $url; log: $log"
}

start_bg beacon-registry "$RUN_DIR/registry.log" "$BIN/beacon-registry"
scripts/ratings.sh start 1 2 3
start_bg beacon-market "$RUN_DIR/market.log" "$BIN/beacon-market"

cat <<'TEXT'

  Beacon demo is up:  open  http://127.0.0.1:5000

  In another terminal, walk the original demo:
    make stopRatings                  kill every ratings instance (ratings go "cached")
    make startRatings INSTANCE=1      bring one back
    make startRatings INSTANCE=2      and a second: requests interleave
    make pauseRatings INSTANCE=2      ^Z: running but unresponsive (breaker OPENs)
    make resumeRatings INSTANCE=2     fg: it re-registers and its breaker CLOSEs
    curl -s localhost:8400/v1/services/ratings     what the registry sees

  The market's log follows (^C stops everything):

TEXT
tail -n +1 -f "$RUN_DIR/market.log" &
pids+=($!)
wait "${pids[-1]}"
