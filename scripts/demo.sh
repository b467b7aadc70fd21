#!/usr/bin/env bash
# make demo: registry, three ratings instances and the market, in release
# mode, on the embedded in-memory store. Shows the market's log (the seed's
# "WINDOW 1") until ^C, then stops everything it started.
#
# STORE=etcd (make demo-etcd): a 3-member etcd cluster on loopback, two
# registry replicas sharing it, and everyone given both registry URLs.
#
# TLS=1: a throwaway CA and certificates in $RUN_DIR/tls (beacon-certs).
# Everything serves HTTPS; each service proves who it is with its own
# certificate (URI SAN spiffe://beacon/service/<name>): the registry
# requires client certificates (--client-ca) and takes a registration only
# from a certificate naming its service, and the market calls only ratings
# instances whose certificate names ratings (--verify-identity).
#
# DCS=2: two sites on one machine. Site a: the registry on :8400,
# ratings-1 and -2, the market on :5000 (its store $RUN_DIR/market.db);
# site b: a registry on :8500, ratings-3, a market on :5100 (its own store,
# $RUN_DIR/market-b.db). Each market knows the other site's registry
# (--remote-dc): its ratings come from its own site, from the other when
# its own has none to answer. In-memory registries, plain HTTP.
#
# Two market replicas (:5000 and :5001) share one store: DB=sqlite (default,
# $RUN_DIR/market.db) or DB=postgres (a throwaway PostgreSQL server in
# $RUN_DIR/postgres, stopped with the demo). The signing secret is made once
# into $RUN_DIR/market.secret, the data key into $RUN_DIR/market.data-key.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

export RUN_DIR=${RUN_DIR:-run}
BIN=${BIN:-target/release}
STORE=${STORE:-memory}
TLS=${TLS:-}
ZONES=${ZONES:-}
DCS=${DCS:-}
DB=${DB:-sqlite}
if [[ -n $DCS && $DCS != 0 && $DCS != 1 ]]; then
  [[ $DCS == 2 ]] || { echo "DCS must be 2 (two sites), not '$DCS'" >&2; exit 2; }
  [[ $STORE == memory && -z $TLS && -z $ZONES && $DB == sqlite ]] || {
    echo "DCS=2 runs on its own: no STORE, TLS, ZONES or DB with it" >&2; exit 2; }
  sites=1
else
  sites=
fi
export RATINGS_BIN=$BIN/beacon-ratings
mkdir -p "$RUN_DIR"
pids=()
scheme=http
registry_tls=() market_tls=()
# What `make startRatings` needs to start an instance as the demo did, from
# any terminal: scripts/ratings.sh reads it.
ratings_env=$RUN_DIR/ratings.env
: >"$ratings_env"
if [[ -n $TLS && $TLS != 0 ]]; then
  "$BIN/beacon-certs" "$RUN_DIR/tls" >/dev/null
  tls=$RUN_DIR/tls
  export BEACON_CA=$tls/ca.pem
  registry_tls=(--tls-cert "$tls/server.pem" --tls-key "$tls/server.key" --client-ca "$tls/ca.pem")
  market_tls=(--tls-cert "$tls/market.pem" --tls-key "$tls/market.key"
    --client-cert "$tls/market.pem" --client-key "$tls/market.key" --verify-identity)
  # Ratings serve with their certificate and present it to the registry.
  for var in BEACON_TLS_CERT BEACON_CLIENT_CERT; do
    echo "export $var=\${$var:-$tls/ratings.pem}" >>"$ratings_env"
  done
  for var in BEACON_TLS_KEY BEACON_CLIENT_KEY; do
    echo "export $var=\${$var:-$tls/ratings.key}" >>"$ratings_env"
  done
  echo "export BEACON_CA=\${BEACON_CA:-$BEACON_CA}" >>"$ratings_env"
  scheme=https
  echo "TLS: a throwaway CA in $BEACON_CA; everything serves HTTPS, and each service shows its own certificate"
fi

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping the demo..."
  scripts/ratings.sh stop || true
  if [[ $DB == postgres ]]; then scripts/postgres.sh stop "$RUN_DIR/postgres" || true; fi
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

start_etcd() { # N CLIENT_PORT PEER_PORT CLUSTER
  local n=$1 dir="$RUN_DIR/etcd-$1"
  rm -rf "$dir"
  etcd --name "etcd-$n" --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "$4" --initial-cluster-state new --initial-cluster-token beacon-demo \
    >"$RUN_DIR/etcd-$n.log" 2>&1 &
  pids+=($!)
}

case $STORE in
  memory)
    if [[ -n $sites ]]; then
      start_bg "beacon-registry (site a)" "$RUN_DIR/registry.log" "$BIN/beacon-registry" --dc a
      start_bg "beacon-registry (site b)" "$RUN_DIR/registry-b.log" "$BIN/beacon-registry" --dc b --listen 127.0.0.1:8500
    else
      start_bg beacon-registry "$RUN_DIR/registry.log" "$BIN/beacon-registry" "${registry_tls[@]}"
    fi
    export BEACON_REGISTRY=$scheme://127.0.0.1:8400
    ;;
  etcd)
    command -v etcd >/dev/null || { echo "etcd is not installed: apt-get install etcd-server" >&2; exit 1; }
    cluster="etcd-1=http://127.0.0.1:2380,etcd-2=http://127.0.0.1:22380,etcd-3=http://127.0.0.1:32380"
    start_etcd 1 2379 2380 "$cluster"
    start_etcd 2 22379 22380 "$cluster"
    start_etcd 3 32379 32380 "$cluster"
    for _ in $(seq 100); do
      curl -sf http://127.0.0.1:2379/health | grep -q '"true"' && break
      sleep 0.1
    done
    echo "started a 3-member etcd cluster on :2379, :22379, :32379; logs: $RUN_DIR/etcd-N.log"
    export BEACON_STORE=etcd BEACON_ETCD=http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379
    start_bg "beacon-registry (replica 1)" "$RUN_DIR/registry-1.log" "$BIN/beacon-registry" --listen 127.0.0.1:8400 "${registry_tls[@]}"
    start_bg "beacon-registry (replica 2)" "$RUN_DIR/registry-2.log" "$BIN/beacon-registry" --listen 127.0.0.1:8401 "${registry_tls[@]}"
    export BEACON_REGISTRY=$scheme://127.0.0.1:8400,$scheme://127.0.0.1:8401
    ;;
  *) echo "STORE must be memory or etcd, not '$STORE'" >&2; exit 2 ;;
esac
# ZONES=1: ratings-1 and -2 in zone a, ratings-3 in zone b; market replica 1
# in zone a, replica 2 in zone b (the panel shows each instance's zone).
market_zone_1=() market_zone_2=()
if [[ -n $ZONES && $ZONES != 0 ]]; then
  echo "a a b" >"$RUN_DIR/ratings.zones"
  market_zone_1=(--zone a) market_zone_2=(--zone b)
  echo "zones: ratings-1, -2 and market :5000 in a; ratings-3 and market :5001 in b"
else
  rm -f "$RUN_DIR/ratings.zones"
fi
if [[ -n $sites ]]; then
  printf '%s\n' "a http://127.0.0.1:8400" "a http://127.0.0.1:8400" "b http://127.0.0.1:8500" >"$RUN_DIR/ratings.dcs"
  echo "sites: ratings-1, -2 and market :5000 in a (registry :8400); ratings-3 and market :5100 in b (registry :8500)"
else
  rm -f "$RUN_DIR/ratings.dcs"
fi
echo "export BEACON_REGISTRY=\${BEACON_REGISTRY:-$BEACON_REGISTRY}" >>"$ratings_env"
scripts/ratings.sh start 1 2 3

secret_file=$RUN_DIR/market.secret
if [[ ! -s $secret_file ]]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file")
fi
BEACON_MARKET_SECRET=$(cat "$secret_file")
export BEACON_MARKET_SECRET
# Customers' name, email and address are encrypted at rest with this key
# (AES-256-GCM), made once like the secret.
data_key_file=$RUN_DIR/market.data-key
if [[ ! -s $data_key_file ]]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data_key_file")
fi
BEACON_MARKET_DATA_KEY=$(cat "$data_key_file")
export BEACON_MARKET_DATA_KEY
case $DB in
  sqlite) export BEACON_MARKET_DB=sqlite:$RUN_DIR/market.db ;;
  postgres)
    BEACON_MARKET_DB=$(scripts/postgres.sh start "$RUN_DIR/postgres") || exit 1
    export BEACON_MARKET_DB
    echo "started PostgreSQL at $BEACON_MARKET_DB; log: $RUN_DIR/postgres/server.log"
    ;;
  *) echo "DB must be sqlite or postgres, not '$DB'" >&2; exit 2 ;;
esac
if [[ -n $sites ]]; then
  start_bg "beacon-market (site a)" "$RUN_DIR/market.log" "$BIN/beacon-market" --listen 127.0.0.1:5000 \
    --dc a --remote-dc b=http://127.0.0.1:8500
  start_bg "beacon-market (site b)" "$RUN_DIR/market-b.log" "$BIN/beacon-market" --listen 127.0.0.1:5100 \
    --dc b --registry http://127.0.0.1:8500 --remote-dc a=http://127.0.0.1:8400 --db "sqlite:$RUN_DIR/market-b.db"
  second="http://127.0.0.1:5100  (site b's market, its own store; both fail over to the other site)"
else
  start_bg "beacon-market (replica 1)" "$RUN_DIR/market.log" "$BIN/beacon-market" --listen 127.0.0.1:5000 "${market_zone_1[@]}" "${market_tls[@]}"
  start_bg "beacon-market (replica 2)" "$RUN_DIR/market-2.log" "$BIN/beacon-market" --listen 127.0.0.1:5001 "${market_zone_2[@]}" "${market_tls[@]}"
  second="$scheme://127.0.0.1:5001  (a second market replica on the same $DB store)"
fi

open_hint=""
curl_ca=""
if [[ $scheme == https ]]; then
  open_hint="  (trust $BEACON_CA, or accept the browser warning)"
  # The registry wants a client certificate from every caller: curl shows
  # the demo's reader one.
  curl_ca="--cacert $BEACON_CA --cert $RUN_DIR/tls/client.pem --key $RUN_DIR/tls/client.key "
fi
cat <<TEXT

  Beacon demo is up:  open  $scheme://127.0.0.1:5000$open_hint
                      and     $second

  In another terminal, walk the original demo:
    make stopRatings                  kill every ratings instance (ratings go "cached")
    make startRatings INSTANCE=1      bring one back
    make startRatings INSTANCE=2      and a second: requests interleave
    make pauseRatings INSTANCE=2      ^Z: running but unresponsive (breaker OPENs)
    make resumeRatings INSTANCE=2     fg: it re-registers and its breaker CLOSEs
    curl -s $curl_ca$scheme://127.0.0.1:8400/v1/services/ratings     what the registry sees

  Replica 1's log follows (^C stops everything):

TEXT
tail -n +1 -f "$RUN_DIR/market.log" &
pids+=($!)
wait "${pids[-1]}"
