#!/usr/bin/env bash
# Real Airflow 3 (PyPI, pinned by tests/peers/airflow-constraints.txt) with CeleryExecutor, a
# throwaway PostgreSQL 15 cluster (15432) and Redis (16379), on loopback. No Celery worker is
# started, so tasks stay `queued` (the Helm chart's KEDA situation): demand without capacity.
#
# - api-server http://127.0.0.1:8090 (simple auth manager, user admin / password admin-pw)
# - scheduler + dag-processor; DAG `fanout` maps 12 tasks into pool `autoscale_pool` (4 slots,
#   created here), DAG `fanout_other_queue` puts 5 tasks on queue `other` in `default_pool`,
#   DAG `drain_probe` puts 2 tasks of 15 s on queue `drain_probe` (only tests/drain_celery.rs
#   serves that queue, with `airflow.sh celery-worker drain_probe`)
# - every start begins with an empty metadata DB (drop + migrate), so runs do not leak state
#
# Exports: AIRFLOW_API_URL, AIRFLOW_API_USER, AIRFLOW_API_PASSWORD (the tests pass these env var
#          NAMES to poolpilot's SecretRef), AIRFLOW_DB_URL (postgresql://...), AIRFLOW_TEST_POOL,
#          AIRFLOW_TEST_POOL_SLOTS, AIRFLOW_WORKER_CONCURRENCY
source "$(dirname "$0")/lib.sh"

AIRFLOW_VERSION=3.3.2
CONSTRAINTS="$(cd "$(dirname "$0")" && pwd)/airflow-constraints.txt"
AF_DIR=$PEERS_CACHE/airflow
PGBIN=/usr/lib/postgresql/15/bin
# initdb runs as `postgres`, which cannot enter /root: keep the cluster in a world-traversable dir.
PG_DIR=${POOLPILOT_PG_DIR:-/var/tmp/poolpilot-pg}
# Fixed ports below the ephemeral port range (see lib.sh).
PG_PORT=15432
REDIS_PORT=16379
API_PORT=8090
API=http://127.0.0.1:$API_PORT
POOL=autoscale_pool
POOL_SLOTS=4

af_env() {
  export AIRFLOW_HOME=$AF_DIR/home
  export PATH=$(venv airflow)/bin:$PATH # `airflow` components spawn `airflow` from PATH
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW_HOME/dags
  export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT=$API_PORT
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$API/execution/
  export AIRFLOW__API_AUTH__JWT_SECRET=ci-not-secret-jwt-key-0123456789abcdef
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$AIRFLOW_HOME/passwords.json
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:airflow@127.0.0.1:$PG_PORT/airflow
  export AIRFLOW__CELERY__BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
  export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql://airflow:airflow@127.0.0.1:$PG_PORT/airflow
  export AIRFLOW__CELERY__WORKER_CONCURRENCY=2
}

install() {
  apt_install postgresql redis-server
  local py; py="$(venv airflow)/bin/python"
  if ! "$py" -c "import airflow, sys; sys.exit(airflow.__version__ != '$AIRFLOW_VERSION')" 2>/dev/null; then
    log "installing apache-airflow==$AIRFLOW_VERSION (~30 s)"
    "$py" -m pip install -q --upgrade pip >&2
    "$py" -m pip install -q -c "$CONSTRAINTS" "apache-airflow[postgres,celery]==$AIRFLOW_VERSION" >&2
  fi
  mkdir -p "$AF_DIR/home/dags"
  echo '{"admin": "admin-pw"}' >"$AF_DIR/home/passwords.json"
  cat >"$AF_DIR/home/dags/fanout.py" <<'EOF'
import time
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="fanout", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, max_active_tasks=64)
def fanout():
    @task(pool="autoscale_pool")
    def work(i: int):
        time.sleep(60)
        return i
    work.expand(i=list(range(12)))

@dag(dag_id="fanout_other_queue", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, max_active_tasks=64)
def fanout_other_queue():
    @task(queue="other")
    def work(i: int):
        time.sleep(60)
        return i
    work.expand(i=list(range(5)))

fanout(); fanout_other_queue()
EOF
  cat >"$AF_DIR/home/dags/drain_probe.py" <<'EOF'
import time
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="drain_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def drain_probe():
    @task(queue="drain_probe")
    def work(i: int):
        time.sleep(15)
        return i
    work.expand(i=[0, 1])

drain_probe()
EOF
}

# celery-worker QUEUE: one Celery worker serving QUEUE, in the foreground, for a test that needs
# tasks to really run (the test starts and stops it). Task instances record the hostname from
# AIRFLOW__CORE__HOSTNAME_CALLABLE when the caller sets it.
celery_worker() {
  [[ -n ${1:-} ]] || { log "usage: $0 celery-worker QUEUE"; return 2; }
  af_env
  exec airflow celery worker --queues "$1" --concurrency 2 --skip-serve-logs --celery-hostname "$1@%h"
}

pg() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q "$@" >&2; }

start_postgres() {
  if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
    command install -d -o postgres -g postgres "$PG_DIR" "$PG_DIR/data" "$PG_DIR/sock"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-instructions >&2
  fi
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >&2 ||
    peer_failed "airflow (postgres)" "$PG_DIR/server.log" "$PG_PORT"
  wait_for "postgres" 30 "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" || peer_failed "airflow (postgres)" "$PG_DIR/server.log" "$PG_PORT"
  pg -c "DROP DATABASE IF EXISTS airflow WITH (FORCE);"
  pg -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='airflow') THEN CREATE USER airflow PASSWORD 'airflow'; END IF; END \$\$;"
  pg -c "CREATE DATABASE airflow OWNER airflow;"
}

token() {
  curl -sf --max-time 5 -X POST "$API/auth/token" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"admin-pw"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

dags_visible() {
  local t; t=$(token) || return 1
  curl -sf --max-time 5 -H "Authorization: Bearer $t" "$API/api/v2/dags/fanout" >/dev/null &&
    curl -sf --max-time 5 -H "Authorization: Bearer $t" "$API/api/v2/dags/fanout_other_queue" >/dev/null
}

start() {
  stop # a leftover from an interrupted run would hold the ports
  af_env
  need_ports airflow "$PG_PORT" "$REDIS_PORT" "$API_PORT"
  mkdir -p "$PG_DIR" "$AF_DIR/redis"
  start_bg airflow-redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$AF_DIR/redis"
  wait_for "redis" 20 redis-cli -p "$REDIS_PORT" ping || peer_failed "airflow (redis)" "$PEERS_RUN/airflow-redis.log" "$REDIS_PORT"
  start_postgres
  airflow db migrate >"$PEERS_RUN/airflow-migrate.log" 2>&1 || { log "airflow db migrate failed"; tail -20 "$PEERS_RUN/airflow-migrate.log" >&2; return 1; }
  local c
  for c in api-server scheduler dag-processor; do start_bg "airflow-$c" airflow "$c"; done
  wait_http "$API/api/v2/monitor/health" 120 || peer_failed "airflow (api-server)" "$PEERS_RUN/airflow-api-server.log" "$API_PORT"
  wait_for "airflow DAGs parsed" 120 dags_visible
  local t; t=$(token)
  curl -sf --max-time 10 -X POST "$API/api/v2/pools" -H "Authorization: Bearer $t" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$POOL\",\"slots\":$POOL_SLOTS,\"description\":\"poolpilot tests\",\"include_deferred\":false}" >/dev/null
  cat <<EOF
export AIRFLOW_API_URL=$API
export AIRFLOW_API_USER=admin
export AIRFLOW_API_PASSWORD=admin-pw
export AIRFLOW_DB_URL=postgresql://airflow:airflow@127.0.0.1:$PG_PORT/airflow
export AIRFLOW_TEST_POOL=$POOL
export AIRFLOW_TEST_POOL_SLOTS=$POOL_SLOTS
export AIRFLOW_WORKER_CONCURRENCY=2
EOF
}

stop() {
  # Scheduler before api-server: a scheduler can hang when the api-server is gone (real-peers.md §3).
  stop_pid airflow-scheduler 30
  stop_pid airflow-dag-processor 15
  stop_pid airflow-api-server 15
  stop_pid airflow-redis 10
  if [[ -f $PG_DIR/data/postmaster.pid ]]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >&2 || true
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  celery-worker) celery_worker "${2:-}" ;;
  *) echo "usage: $0 install|start|stop|celery-worker QUEUE" >&2; exit 2 ;;
esac
