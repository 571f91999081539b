# Shared helpers for the real-peer scripts in tests/peers/. Sourced, not run.
#
# Contract for every tests/peers/<peer>.sh:
#   <peer>.sh install   idempotent; installs into $PEERS_CACHE (outside the clone)
#   <peer>.sh start     starts on 127.0.0.1, waits until ready, prints `export NAME=value`
#                       lines (the env the tests read) on stdout; exit != 0 when it cannot start
#   <peer>.sh stop      stops only what `start` started, by PID (pid files in $PEERS_RUN)
# Logs go to $PEERS_RUN/<name>.log; diagnostics go to stderr, never stdout.
set -euo pipefail

PEERS_CACHE="${POOLPILOT_CACHE:-$HOME/.cache/poolpilot}"
PEERS_RUN="${POOLPILOT_PEERS_RUN:-$PEERS_CACHE/run}"
mkdir -p "$PEERS_CACHE" "$PEERS_RUN"

log() { printf '[peers] %s\n' "$*" >&2; }

# start_bg NAME CMD... : start CMD in its own session (so its whole group can be stopped), record the PID.
start_bg() {
  local name=$1; shift
  setsid "$@" >"$PEERS_RUN/$name.log" 2>&1 < /dev/null &
  echo $! >"$PEERS_RUN/$name.pid"
}

# wait_for DESC TIMEOUT_S CMD... : poll CMD every 0.5 s until it succeeds or TIMEOUT_S passes.
wait_for() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$desc not ready after ${timeout}s"
      return 1
    fi
    sleep 0.5
  done
  log "$desc ready"
}

# wait_http URL TIMEOUT_S : wait until URL answers with any HTTP status < 500.
wait_http() {
  wait_for "$1" "$2" curl -sf -o /dev/null --max-time 2 "$1"
}

# stop_pid NAME [GRACE_S] : SIGTERM the process group started as NAME, SIGKILL it after GRACE_S.
stop_pid() {
  local name=$1 grace=${2:-15} pidfile="$PEERS_RUN/$1.pid"
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# apt_install PKG... : install Debian packages once (apt-get update on first use).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  if [[ ! -f $PEERS_CACHE/.apt-updated ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && touch "$PEERS_CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# venv NAME : path of a Python venv in the cache, created on first use.
venv() {
  local dir="$PEERS_CACHE/venv-$1"
  [[ -x $dir/bin/python ]] || python3 -m venv "$dir" >&2
  echo "$dir"
}
