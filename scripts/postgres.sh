#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for tests and `make demo DB=postgres`.
#
#   scripts/postgres.sh start DIR [PORT]  initdb in DIR (if new) and start on
#                                         127.0.0.1:PORT (a free one if not
#                                         given); prints the database URL
#   scripts/postgres.sh stop DIR          stops it (fast shutdown)
#
# PostgreSQL refuses to run as root: as root, the server runs as `nobody`
# (DIR is given to it). Trust authentication, loopback only: for throwaway
# servers, never for real data.
set -euo pipefail

bin_dir() {
  if command -v pg_ctl >/dev/null; then dirname "$(command -v pg_ctl)"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir ]] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
  echo "$dir"
}

as_server() { # COMMAND...: as `nobody` when we are root
  if [[ $(id -u) == 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd=${1:-}
dir=${2:-}
[[ -n $dir ]] || { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
bin=$(bin_dir)
case $cmd in
  start)
    port=${3:-$(free_port)}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ $(id -u) == 0 ]] && chown -R nobody "$dir"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      as_server "$bin/initdb" -D "$dir/data" -U beacon --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { echo "initdb failed: $(tail -n 3 "$dir/initdb.log")" >&2; exit 1; }
    fi
    as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=100" \
      start >/dev/null \
      || { echo "PostgreSQL did not start: $(tail -n 3 "$dir/server.log")" >&2; exit 1; }
    echo "postgres://beacon@127.0.0.1:$port/postgres"
    ;;
  stop)
    [[ -f $dir/data/postmaster.pid ]] || exit 0
    as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
  *) echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2 ;;
esac
