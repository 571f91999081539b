#!/usr/bin/env bash
# Apache Superset from PyPI in its own venv under $PEERS_CACHE, for a test that runs Superset's
# own Celery worker (`superset.tasks.celery_app`) against tests/peers/redis.sh. Nothing runs
# here; the test starts the worker with the config written by `start`.
#
# `pip install apache-superset` resolves unpinned: it picked flask-caching 2.5.1, whose cache
# factory passes `ignore_delete_many_errors`, which Superset 6.1.0's SupersetMetastoreCache
# rejects (TypeError at import of superset.tasks.celery_app); flask-caching is pinned to 2.3.1.
# It also picked celery/kombu 5.7.0, whose Redis transport requires redis-py >= 6.1.0 while
# Superset pins redis<6.0 (kombu.exceptions.VersionMismatch when the worker connects): celery
# 5.5.3 / kombu 5.5.4 are pinned.
#
# Exports: SUPERSET_PYTHON, SUPERSET_CONFIG_PATH (SQLite metadata DB, broker from CELERY_BROKER)
source "$(dirname "$0")/lib.sh"

SUPERSET_VERSION=6.1.0
SS_DIR=$PEERS_CACHE/superset

install() {
  local py; py="$(venv superset)/bin/python"
  if ! "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('apache-superset') != '$SUPERSET_VERSION' or m.version('flask-caching') != '2.3.1' or m.version('kombu') != '5.5.4')" 2>/dev/null; then
    log "installing apache-superset==$SUPERSET_VERSION (several minutes)"
    "$py" -m pip install -q "apache-superset==$SUPERSET_VERSION" "flask-caching==2.3.1" \
      "celery==5.5.3" "kombu==5.5.4" >&2
  fi
}

start() {
  install
  mkdir -p "$SS_DIR"
  cat >"$SS_DIR/superset_config.py" <<PY
import os
SECRET_KEY = "ci-not-secret-superset-key-0123456789"
SQLALCHEMY_DATABASE_URI = "sqlite:///$SS_DIR/superset.db"
class CeleryConfig:
    broker_url = os.environ["CELERY_BROKER"]
    imports = ("superset.sql_lab", "superset.tasks.scheduler")
    worker_prefetch_multiplier = 1
    task_ignore_result = True
CELERY_CONFIG = CeleryConfig
PY
  local py; py="$(venv superset)/bin/python"
  SUPERSET_CONFIG_PATH=$SS_DIR/superset_config.py CELERY_BROKER=redis://127.0.0.1:1/0 \
    "$py" -c "from superset.tasks.celery_app import app" >&2 || { log "superset's celery app does not import"; return 1; }
  echo "export SUPERSET_PYTHON=$py"
  echo "export SUPERSET_CONFIG_PATH=$SS_DIR/superset_config.py"
}

stop() { :; }

"${1:?usage: superset.sh install|start|stop}"
