#!/usr/bin/env bash
# Real Spark standalone master + 2 workers from PyPI `pyspark` (pinned), on loopback.
#
# - master: spark://127.0.0.1:7077, UI/JSON http://127.0.0.1:8080/json/, decommission endpoint and
#   REST submission server (6066; submit/kill drivers) enabled
# - workers: 2 cores / 2 GiB each, bound to their own addresses 127.0.0.2 (UI 8081) and
#   127.0.0.3 (UI 8082) so that `POST /workers/kill/?host=` can target one of them
# - also installs a tiny PySpark app (sleepy.py) the tests submit to create real demand
#
# Exports: SPARK_MASTER_WEB (http URL), SPARK_MASTER_URL (spark://), SPARK_MASTER_REST (6066), SPARK_HOME, SPARK_SUBMIT,
#          SPARK_SLEEPY_APP, SPARK_PYTHON, SPARK_WORKER_HOSTS (space separated), SPARK_WORKER_CORES
source "$(dirname "$0")/lib.sh"

PYSPARK_VERSION=4.3.0
SPARK_DIR=$PEERS_CACHE/spark
WORKER_HOSTS=(127.0.0.2 127.0.0.3)
WORKER_UI_PORTS=(8081 8082)
WORKER_CORES=2

spark_home() { "$(venv spark)/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'; }

install() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local py; py="$(venv spark)/bin/python"
  if ! "$py" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
    log "installing pyspark==$PYSPARK_VERSION (~1 min: 456 MB sdist)"
    "$py" -m pip install -q --no-cache-dir "pyspark==$PYSPARK_VERSION" >&2
  fi
  mkdir -p "$SPARK_DIR"
  # An app that holds its executors for SECS seconds: PARTS tasks of SECS each.
  cat >"$SPARK_DIR/sleepy.py" <<'EOF'
import sys, time
from pyspark.sql import SparkSession
name, secs, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spark = SparkSession.builder.appName(name).getOrCreate()
sc = spark.sparkContext
sc.parallelize(range(parts), parts).map(lambda x: (time.sleep(secs), x)[1]).collect()
spark.stop()
EOF
}

alive_workers_at_least() {
  curl -sf --max-time 2 http://127.0.0.1:8080/json/ | grep -q "\"aliveworkers\" : $1"
}

start() {
  stop # a leftover from an interrupted run would hold the ports
  local i ports=(7077 8080 6066)
  for i in "${!WORKER_HOSTS[@]}"; do ports+=("${WORKER_HOSTS[$i]}:${WORKER_UI_PORTS[$i]}"); done
  need_ports spark "${ports[@]}"
  local home; home=$(spark_home)
  SPARK_LOCAL_IP=127.0.0.1 \
  SPARK_MASTER_OPTS="-Dspark.decommission.enabled=true -Dspark.master.ui.decommission.allow.mode=LOCAL -Dspark.master.rest.enabled=true -Dspark.master.rest.host=127.0.0.1 -Dspark.master.rest.port=6066" \
    start_bg spark-master "$home/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port 7077 --webui-port 8080
  wait_for "spark master" 90 sh -c 'curl -sf --max-time 2 http://127.0.0.1:8080/json/ | grep -q "\"status\" : \"ALIVE\""' ||
    peer_failed "spark (master)" "$PEERS_RUN/spark-master.log" 7077 8080 6066
  for i in "${!WORKER_HOSTS[@]}"; do
    local host=${WORKER_HOSTS[$i]} n=$((i + 1))
    mkdir -p "$SPARK_DIR/work-$n"
    SPARK_LOCAL_IP=$host SPARK_WORKER_DIR=$SPARK_DIR/work-$n \
    SPARK_WORKER_OPTS="-Dspark.decommission.enabled=true" \
      start_bg "spark-worker-$n" "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host "$host" --cores "$WORKER_CORES" --memory 2g --webui-port "${WORKER_UI_PORTS[$i]}" \
        spark://127.0.0.1:7077
  done
  wait_for "spark workers" 120 alive_workers_at_least "${#WORKER_HOSTS[@]}" ||
    peer_failed "spark (workers)" "$PEERS_RUN/spark-worker-1.log" "${WORKER_UI_PORTS[@]}"
  cat <<EOF
export SPARK_MASTER_WEB=http://127.0.0.1:8080
export SPARK_MASTER_URL=spark://127.0.0.1:7077
export SPARK_MASTER_REST=http://127.0.0.1:6066
export SPARK_HOME=$home
export SPARK_SUBMIT=$home/bin/spark-submit
export SPARK_SLEEPY_APP=$SPARK_DIR/sleepy.py
export SPARK_PYTHON=$(venv spark)/bin/python
export SPARK_WORKER_HOSTS="${WORKER_HOSTS[*]}"
export SPARK_WORKER_CORES=$WORKER_CORES
EOF
}

stop() {
  local i
  for i in "${!WORKER_HOSTS[@]}"; do stop_pid "spark-worker-$((i + 1))" 15; done
  stop_pid spark-master 15
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
