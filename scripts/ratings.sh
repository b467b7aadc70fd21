#!/usr/bin/env bash
# Start, pause, resume and stop ratings instances in the background.
#
#   scripts/ratings.sh start N...    start instances (pid and log under $RUN_DIR)
#   scripts/ratings.sh pause N       SIGSTOP: running but unresponsive
#   scripts/ratings.sh resume N      SIGCONT
#   scripts/ratings.sh stop [N...]   SIGTERM and wait for exit (all when none named)
#   scripts/ratings.sh faults N MS PERCENT [CAPACITY [WARMUP_MS]]
#                                    while it runs: answer MS ms late, fail
#                                    PERCENT% of rating requests, serve
#                                    CAPACITY at once (0: no limit), be 5x
#                                    slower for WARMUP_MS (PUT /_faults)
#
# Environment: RUN_DIR (default run), RATINGS_BIN (default
# target/release/beacon-ratings), RATINGS_ARGS (extra flags), and the
# binary's own BEACON_REGISTRY / BEACON_TOKEN.
#
# The demo's settings: if $RUN_DIR/ratings.env exists (`make demo` writes
# it: the registry's URLs and, with TLS=1, the ratings certificate), an
# instance starts with them, unless the environment sets them already.
#
# Zones: if $RUN_DIR/ratings.zones exists (`make demo ZONES=1` writes it),
# it lists zones, e.g. "a a b", and instance N registers in the Nth
# (counting round again past the last): a restarted instance keeps its zone.
#
# Sites: if $RUN_DIR/ratings.dcs exists (`make demo DCS=2` writes it), each
# line is a site and its registry's URL, e.g. "b http://127.0.0.1:8500",
# and instance N runs in the Nth line's site (counting round again),
# registered with that site's registry.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

RUN_DIR=${RUN_DIR:-run}
RATINGS_BIN=${RATINGS_BIN:-target/release/beacon-ratings}
RATINGS_ARGS=${RATINGS_ARGS:-}
mkdir -p "$RUN_DIR"

pidfile() { echo "$RUN_DIR/ratings-$1.pid"; }
logfile() { echo "$RUN_DIR/ratings-$1.log"; }

# Prints the pid of instance N if it is running.
running() {
  local file pid
  file=$(pidfile "$1")
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  alive "$pid" || { rm -f "$file"; return 1; }
  echo "$pid"
}

check_instance() {
  [[ $1 =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 999 )) || {
    echo "instance must be a number in 1..999, not '$1'" >&2; exit 2; }
}

start() {
  local n=$1 pid log url
  check_instance "$n"
  if pid=$(running "$n"); then
    echo "ratings-$n is already running (pid $pid); log: $(logfile "$n")" >&2
    return 1
  fi
  log=$(logfile "$n")
  # shellcheck disable=SC1091 # written by scripts/demo.sh
  [[ -s $RUN_DIR/ratings.env ]] && source "$RUN_DIR/ratings.env"
  local zone_args=()
  if [[ -s $RUN_DIR/ratings.zones ]]; then
    local zones
    read -r -a zones <"$RUN_DIR/ratings.zones"
    if (( ${#zones[@]} > 0 )); then
      zone_args=(--zone "${zones[$(( (n - 1) % ${#zones[@]} ))]}")
    fi
  fi
  if [[ -s $RUN_DIR/ratings.dcs ]]; then
    local sites=()
    mapfile -t sites <"$RUN_DIR/ratings.dcs"
    if (( ${#sites[@]} > 0 )); then
      local site url
      read -r site url <<<"${sites[$(( (n - 1) % ${#sites[@]} ))]}"
      zone_args+=(--dc "$site" --registry "$url")
    fi
  fi
  # The demo's instances take faults from anyone on this machine
  # (slowRatings, flakyRatings); a real one takes them only with its token.
  # shellcheck disable=SC2086 # RATINGS_ARGS is a list of flags
  nohup "$RATINGS_BIN" --instance "$n" --allow-faults "${zone_args[@]}" $RATINGS_ARGS >"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$(pidfile "$n")"
  if url=$(wait_listening "$pid" "$log" "ratings-$n"); then
    echo "started ratings-$n (pid $pid) on $url; log: $log"
  else
    rm -f "$(pidfile "$n")"
    return 1
  fi
}

signal() {
  local what=$1 sig=$2 n=$3 pid
  check_instance "$n"
  pid=$(running "$n") || { echo "ratings-$n is not running" >&2; return 1; }
  kill "-$sig" "$pid"
  echo "$what ratings-$n (pid $pid); log: $(logfile "$n")"
}

stop() {
  local n=$1 pid
  check_instance "$n"
  pid=$(running "$n") || { echo "ratings-$n is not running"; return 0; }
  # A paused process can't act on SIGTERM until it runs again.
  kill -TERM "$pid"; kill -CONT "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    alive "$pid" || { rm -f "$(pidfile "$n")"; echo "stopped ratings-$n (pid $pid)"; return 0; }
    sleep 0.05
  done
  echo "ratings-$n (pid $pid) did not exit within 10 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$n")"
}

# PUT /_faults on running instance N, at the address its log announced.
faults() {
  local n=$1 delay=$2 percent=$3 capacity=${4:-0} warmup=${5:-0} log url answer code body auth=()
  check_instance "$n"
  [[ $delay =~ ^[0-9]+$ ]] || { echo "MS must be a whole number of milliseconds, not '$delay'" >&2; exit 2; }
  [[ $percent =~ ^[0-9]+$ ]] || { echo "PERCENT must be a whole number in 0..100, not '$percent'" >&2; exit 2; }
  [[ $capacity =~ ^[0-9]+$ ]] || { echo "CAPACITY must be a whole number of requests (0: no limit), not '$capacity'" >&2; exit 2; }
  [[ $warmup =~ ^[0-9]+$ ]] || { echo "WARMUP_MS must be a whole number of milliseconds, not '$warmup'" >&2; exit 2; }
  running "$n" >/dev/null || { echo "ratings-$n is not running" >&2; return 1; }
  log=$(logfile "$n")
  url=$(grep -Eo 'listening on https?://[^ ]*' "$log" | tail -n 1) ||
    { echo "ratings-$n has not said where it listens; log: $log" >&2; return 1; }
  url=${url#listening on }
  [[ -n ${BEACON_TOKEN:-} ]] && auth=(-H "Authorization: Bearer $BEACON_TOKEN")
  # Over TLS (make demo TLS=1), trust the demo's CA.
  [[ $url == *https://* ]] && auth+=(--cacert "${BEACON_CA:-$RUN_DIR/tls/ca.pem}")
  answer=$(curl -sS --max-time 5 -X PUT "${auth[@]}" -H 'Content-Type: application/json' \
    --data "{\"delay_ms\": $delay, \"fail_percent\": $percent, \"capacity\": $capacity, \"warmup_ms\": $warmup}" -w '\n%{http_code}' "$url/_faults") ||
    { echo "ratings-$n did not answer at $url" >&2; return 1; }
  code=${answer##*$'\n'}; body=${answer%$'\n'*}
  if [[ $code == 200 ]]; then
    echo "ratings-$n now answers $delay ms late and fails $percent% of rating requests" \
      "$( ((capacity)) && echo ", $capacity at once")$( ((warmup)) && echo ", 5x slower for $warmup ms")"
  else
    echo "ratings-$n refused the change ($code): $body" >&2
    return 1
  fi
}

command=${1:-}; shift || true
case $command in
  start)  (( $# )) || { echo "start needs instance numbers" >&2; exit 2; }
          status=0; for n in "$@"; do start "$n" || status=1; done; exit $status ;;
  pause)  signal "paused (SIGSTOP)" STOP "${1:?pause needs INSTANCE}" ;;
  resume) signal "resumed (SIGCONT)" CONT "${1:?resume needs INSTANCE}" ;;
  stop)   if (( $# )); then for n in "$@"; do stop "$n"; done
          else
            shopt -s nullglob
            for file in "$RUN_DIR"/ratings-*.pid; do n=${file##*/ratings-}; stop "${n%.pid}"; done
          fi ;;
  faults) faults "${1:?faults needs INSTANCE}" "${2:?faults needs MS}" "${3:?faults needs PERCENT}" "${4:-0}" "${5:-0}" ;;
  *) echo "usage: $0 start N... | pause N | resume N | stop [N...] | faults N MS PERCENT [CAPACITY [WARMUP_MS]]" >&2; exit 2 ;;
esac
