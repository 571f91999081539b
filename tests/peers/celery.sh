#!/usr/bin/env bash
# Celery 5 from PyPI in a venv under $PEERS_CACHE (outside the clone), with Redis support, and
# the tests' tiny app tests/peers/celery_app.py. Nothing runs here: each test starts its own
# `celery worker` processes (named celery@<member id>) against tests/peers/redis.sh or
# rabbitmq.sh, and stops them by PID.
#
# Exports: CELERY_PYTHON (the venv's python), CELERY_APP_DIR (where celery_app.py is)
source "$(dirname "$0")/lib.sh"

CELERY_VERSION=5.6.3
KOMBU_VERSION=5.7.0

install() {
  local py; py="$(venv celery)/bin/python"
  if ! "$py" -c "import celery, sys; sys.exit(celery.__version__ != '$CELERY_VERSION')" 2>/dev/null; then
    log "installing celery[redis]==$CELERY_VERSION"
    "$py" -m pip install -q "celery[redis]==$CELERY_VERSION" "kombu==$KOMBU_VERSION" >&2
  fi
}

start() {
  install
  local py; py="$(venv celery)/bin/python"
  "$py" -c "import celery, kombu, redis" || { log "celery venv is broken"; return 1; }
  echo "export CELERY_PYTHON=$py"
  echo "export CELERY_APP_DIR=$(cd "$(dirname "$0")" && pwd)"
}

stop() { :; }

"${1:?usage: celery.sh install|start|stop}"
