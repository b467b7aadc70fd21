#!/usr/bin/env bash
# Quick registry load from a second process on loopback (wrk), release build.
# Usage: scripts/registry-quickbench.sh        (about 40 s)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p beacon-registry
PORT=18400; BASE=http://127.0.0.1:$PORT; Q=scripts/quickbench
target/release/beacon-registry --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
REG=$!; trap 'kill $REG 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf $BASE/_health >/dev/null && break; sleep 0.1; done
python3 $Q/expiry_probe.py $BASE seed
rate() { grep -E 'Requests/sec' | awk '{printf "%.0f", $2}'; }
pct() { grep -E "^ +$1%" | awk '{print $2}'; }
echo "| measurement | result |"
echo "|---|---|"
out=$(wrk -t1 -c64 -d10s --latency -s $Q/heartbeat.lua $BASE)
echo "| heartbeats/s (64 connections, 1000 instances) | $(rate <<<"$out") (p50 $(pct 50 <<<"$out"), p99 $(pct 99 <<<"$out")) |"
out=$(wrk -t1 -c16 -d10s --latency $BASE/v1/services/small)
echo "| resolve, 3 instances | $(rate <<<"$out")/s, p50 $(pct 50 <<<"$out"), p99 $(pct 99 <<<"$out") |"
out=$(wrk -t1 -c4 -d10s --latency $BASE/v1/services/bulk)
echo "| resolve, 10k instances (1.4 MB answer) | $(rate <<<"$out")/s, p50 $(pct 50 <<<"$out"), p99 $(pct 99 <<<"$out") |"
wrk -t2 -c64 -d6s -s $Q/register-wave.lua $BASE >/dev/null
python3 $Q/expiry_probe.py $BASE probe
echo "| registry RSS after the run | $(ps -o rss= -p $REG) KiB |"
