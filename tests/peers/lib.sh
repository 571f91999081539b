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

# Ports. Linux picks the local port of every outgoing connection from
# /proc/sys/net/ipv4/ip_local_port_range (`32768 60999` by default, and on the machines CI runs
# on), so a peer listening on a fixed port inside that range fails at random with "address
# already in use" whenever some connection happens to hold it. Every peer therefore listens on a
# fixed port below 32768 (tests/peer_ports.rs fails if a port in tests/peers/*.sh or
# benches/*.sh lies in 32768-60999), and `start` checks its ports with `need_ports` first.

# port_users PORT : the sockets on local port PORT other than TIME-WAIT, one `ss` line each
# (with the owning process when `ss -p` may show it); nothing when the port is free or `ss` is
# missing.
port_users() {
  command -v ss >/dev/null || return 0
  ss -Htanp "sport = :$1" 2>/dev/null | awk '$1 != "TIME-WAIT"' || true
}

# port_free PORT [ADDR] : whether a server could bind ADDR:PORT now (ADDR: 127.0.0.1), checked
# by binding it as servers do (SO_REUSEADDR, so TIME-WAIT leftovers do not count).
port_free() {
  python3 - "$1" "${2:-127.0.0.1}" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[1])))
PY
}

# need_ports PEER [ADDR:]PORT... : fail, naming PEER, the port and whatever holds it, unless every
# PORT is free on ADDR (127.0.0.1 when not given); warn about a port inside this machine's
# ephemeral range.
need_ports() {
  local peer=$1 spec addr port low high held=0; shift
  read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { low=1 high=0; }
  for spec in "$@"; do
    port=${spec##*:} addr=127.0.0.1
    [[ $spec == *:* ]] && addr=${spec%:*}
    if ((port >= low && port <= high)); then
      log "$peer: WARNING: port $port lies in this machine's ephemeral port range $low-$high: any outgoing connection may hold it"
    fi
    if ! port_free "$port" "$addr"; then
      log "$peer: port $port ($addr) is in use by: $(port_users "$port" | tr -s ' ' | paste -sd ';' -)"
      held=1
    fi
  done
  ((held == 0)) || { log "$peer: not started: free the port(s) above or stop what holds them"; return 1; }
}

# pick_port [LOW [HIGH]] : a port in LOW..HIGH (default 20000..32000, below the ephemeral range)
# that is free on 127.0.0.1 now, for a process started with a port chosen at run time.
pick_port() {
  local low=${1:-20000} high=${2:-32000} port i
  for ((i = 0; i < 50; i++)); do
    port=$((low + RANDOM % (high - low + 1)))
    port_free "$port" && { echo "$port"; return 0; }
  done
  log "no free port in $low-$high after 50 tries"
  return 1
}

# peer_failed PEER LOGFILE PORT... : report that PEER did not start: what holds each PORT now and
# the end of LOGFILE. Returns 1, so `wait_... || peer_failed ...` fails the start.
peer_failed() {
  local peer=$1 logfile=$2 port users; shift 2
  for port in "$@"; do
    users=$(port_users "$port" | tr -s ' ' | paste -sd ';' -)
    log "$peer: failed to start; port $port: ${users:-nothing listens there}"
  done
  if [[ -f $logfile ]]; then
    log "$peer: last lines of $logfile:"
    tail -15 "$logfile" | sed 's/^/    /' >&2
  fi
  return 1
}

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
