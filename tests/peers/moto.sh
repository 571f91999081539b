#!/usr/bin/env bash
# moto in server mode: the real AWS Auto Scaling query-protocol wire (request encoding, XML
# parsing, scale-out/scale-in flow) for the ASG actuator tests. moto routes on the SigV4
# credential scope and never checks signatures, so dummy credentials work
# (../shared/reference/real-peers.md §2). Its fidelity gaps (no throttling, no
# ScalingActivityInProgress, no min/max validation) are covered by a fault-injecting fake in
# tests/actuator_aws.rs instead.
#
#   moto.sh install   venv with moto[server] pinned, in $PEERS_CACHE
#   moto.sh start     moto_server on 127.0.0.1:5000
#   moto.sh stop
#
# Exports: POOLPILOT_TEST_AWS_ENDPOINT (the tests pass it as the endpoint override) plus
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION dummies, so that the standard credential chain
# resolves without touching any real account.
source "$(dirname "$0")/lib.sh"

MOTO_VERSION=5.2.5
BOTO3_VERSION=1.44.5
PORT=5000

install() {
  local env
  env=$(venv moto)
  if "$env/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    log "moto $MOTO_VERSION already installed"
    return 0
  fi
  "$env/bin/pip" install -q "moto[server]==$MOTO_VERSION" "boto3==$BOTO3_VERSION" >&2
}

start() {
  local env="$PEERS_CACHE/venv-moto"
  [[ -x $env/bin/moto_server ]] || { log "moto not installed; run: $0 install"; return 1; }
  stop_pid moto 5
  need_ports moto "$PORT"
  start_bg moto "$env/bin/moto_server" -H 127.0.0.1 -p "$PORT"
  wait_http "http://127.0.0.1:$PORT/moto-api/" 60 || peer_failed moto "$PEERS_RUN/moto.log" "$PORT"
  echo "export POOLPILOT_TEST_AWS_ENDPOINT=http://127.0.0.1:$PORT"
  echo "export AWS_ACCESS_KEY_ID=testing"
  echo "export AWS_SECRET_ACCESS_KEY=testing"
  echo "export AWS_REGION=us-east-1"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid moto 5 ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
