# Shell helpers shared by the scripts; source it.

# Whether process $1 is alive. An exited child whose parent is gone may sit as a
# zombie until init reaps it; it counts as exited.
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# wait_listening PID LOG NAME: waits (5 s at most) for the "listening on URL"
# line in LOG and prints the URL; if the process dies first, says why.
wait_listening() {
  local pid=$1 log=$2 name=$3 url
  for _ in $(seq 100); do
    if url=$(grep -Eo 'listening on https?://[^ ]*' "$log"); then
      echo "${url#listening on }"
      return 0
    fi
    if ! alive "$pid"; then
      echo "$name failed to start: $(tail -n 1 "$log")" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "$name (pid $pid) did not report listening within 5 s; log: $log" >&2
  return 1
}
