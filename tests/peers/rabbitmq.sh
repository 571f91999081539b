#!/usr/bin/env bash
# Real RabbitMQ (Debian `rabbitmq-server`) with its management plugin, run as a plain process
# (not the system service) with every file under $PEERS_RUN/rabbitmq and fixed ports below the
# ephemeral range: AMQP 15682, management HTTP 15683, Erlang distribution 15684, epmd 14369.
# Every start begins with an empty node (mnesia dir wiped). User `poolpilot` / `poolpilot-pw`
# (administrator) on vhost `/`; the guest user stays loopback-only as shipped.
#
# Exports: CELERY_AMQP_URL (amqp://poolpilot:poolpilot-pw@127.0.0.1:15682//),
#          RABBITMQ_MGMT_URL (http://127.0.0.1:15683), RABBITMQ_USER, RABBITMQ_PASSWORD
source "$(dirname "$0")/lib.sh"

AMQP_PORT=15682
MGMT_PORT=15683
DIST_PORT=15684
EPMD_PORT=14369
RMQ_DIR=$PEERS_RUN/rabbitmq

install() { apt_install rabbitmq-server; }

rmq_env() {
  export RABBITMQ_NODENAME=poolpilot@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export RABBITMQ_DIST_PORT=$DIST_PORT
  export ERL_EPMD_PORT=$EPMD_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
  export RABBITMQ_LOG_BASE=$RMQ_DIR/log
  export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
  export RABBITMQ_PID_FILE=$RMQ_DIR/rabbitmq.pid
  export RABBITMQ_SERVER_START_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export HOME=$RMQ_DIR/home # the Erlang cookie lives here
}

start() {
  install
  need_ports rabbitmq "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT"
  rm -rf "$RMQ_DIR" && mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/log"
  rmq_env
  printf '[rabbitmq_management].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat >"$RMQ_DIR/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
management.tcp.port = $MGMT_PORT
management.tcp.ip = 127.0.0.1
loopback_users.guest = true
CONF
  start_bg rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
  # The broker process runs as this user; rabbitmqctl needs the same env and cookie.
  wait_for "rabbitmq on $AMQP_PORT" 90 /usr/lib/rabbitmq/bin/rabbitmqctl -q await_startup ||
    peer_failed rabbitmq "$PEERS_RUN/rabbitmq.log" "$AMQP_PORT" "$MGMT_PORT"
  /usr/lib/rabbitmq/bin/rabbitmqctl -q add_user poolpilot poolpilot-pw >&2
  /usr/lib/rabbitmq/bin/rabbitmqctl -q set_user_tags poolpilot administrator >&2
  /usr/lib/rabbitmq/bin/rabbitmqctl -q set_permissions -p / poolpilot '.*' '.*' '.*' >&2
  wait_for "rabbitmq management on $MGMT_PORT" 60 \
    curl -sf -o /dev/null --max-time 2 -u poolpilot:poolpilot-pw "http://127.0.0.1:$MGMT_PORT/api/overview" ||
    peer_failed rabbitmq "$PEERS_RUN/rabbitmq.log" "$MGMT_PORT"
  echo "export CELERY_AMQP_URL=amqp://poolpilot:poolpilot-pw@127.0.0.1:$AMQP_PORT//"
  echo "export RABBITMQ_MGMT_URL=http://127.0.0.1:$MGMT_PORT"
  echo "export RABBITMQ_USER=poolpilot"
  echo "export RABBITMQ_PASSWORD=poolpilot-pw"
}

stop() {
  rmq_env
  stop_pid rabbitmq 30
  # epmd was started by the broker in the background on our port; stop it by its PID too.
  local epmd; epmd=$(ss -Htlnp "sport = :$EPMD_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  [[ -n $epmd ]] && kill "$epmd" 2>/dev/null || true
}

"${1:?usage: rabbitmq.sh install|start|stop}"
