#!/bin/sh
# Instructions per call on the caller's thread, Beacon's client and a bare
# hyper-util client (and hyper's bare connection, the floor), counted by callgrind (see examples/instructions_per_call.rs).
# Usage: scripts/instructions-per-call.sh [SMALL LARGE]
set -eu
small=${1:-500}
large=${2:-2500}
bin=target/release/examples/instructions_per_call
[ -x "$bin" ] || cargo build --release --example instructions_per_call
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
count() { # client calls -> instructions on the main thread
    valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$dir/$1-$2" "$bin" "$1" "$2" >/dev/null 2>&1
    grep -h '^summary:' "$dir/$1-$2-01" | awk '{print $2}'
}
printf '| client | instructions per call |\n|---|---|\n'
for client in hyper bare beacon-plain beacon; do
    a=$(count "$client" "$small")
    b=$(count "$client" "$large")
    echo "| $client | $(( (b - a) / (large - small) )) |"
done
