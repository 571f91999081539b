#!/usr/bin/env bash
# Real Redis (Debian `redis-server`) on 127.0.0.1:16389, a broker for the Celery tests
# (tests/sources_celery.rs, tests/daemon_celery.rs). Not Airflow's Redis (16379): every start
# begins empty (no persistence), so runs do not leak queues.
#
# Exports: CELERY_REDIS_URL (redis://127.0.0.1:16389)
source "$(dirname "$0")/lib.sh"

REDIS_PORT=16389

install() { apt_install redis-server; }

start() {
  install
  need_ports redis "$REDIS_PORT"
  mkdir -p "$PEERS_RUN/redis-celery"
  start_bg redis-celery redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
    --appendonly no --dir "$PEERS_RUN/redis-celery" --protected-mode yes
  wait_for "redis on $REDIS_PORT" 20 redis-cli -p "$REDIS_PORT" ping ||
    peer_failed redis "$PEERS_RUN/redis-celery.log" "$REDIS_PORT"
  echo "export CELERY_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
}

stop() { stop_pid redis-celery; }

"${1:?usage: redis.sh install|start|stop}"
