#!/usr/bin/env bash
# Real Prometheus (Debian `prometheus` package) on 127.0.0.1:19090, scraping every second
# whatever targets the tests drop into its file-service-discovery directory, so a test can
# point it at a daemon listening on a port chosen at run time.
#
#   prometheus.sh install   apt-get install prometheus (no systemd here: never auto-started)
#   prometheus.sh start     prometheus with a throwaway TSDB under $PEERS_RUN/prometheus
#   prometheus.sh stop
#
# Exports: PROMETHEUS_URL (query API base), PROMETHEUS_FILE_SD_DIR (write <name>.json there:
# [{"targets": ["127.0.0.1:PORT"], "labels": {...}}]; picked up within ~1 s).
source "$(dirname "$0")/lib.sh"

PORT=19090 # below the ephemeral port range: see lib.sh
PROM_RUN="$PEERS_RUN/prometheus"

install() {
  apt_install prometheus
}

start() {
  command -v prometheus >/dev/null || { log "prometheus not installed; run: $0 install"; return 1; }
  stop_pid prometheus 10
  need_ports prometheus "$PORT"
  rm -rf "$PROM_RUN" && mkdir -p "$PROM_RUN/targets" "$PROM_RUN/data"
  cat >"$PROM_RUN/prometheus.yml" <<EOF2
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: poolpilot
    file_sd_configs:
      - files: ['$PROM_RUN/targets/*.json']
        refresh_interval: 1s
EOF2
  start_bg prometheus prometheus --config.file="$PROM_RUN/prometheus.yml" --storage.tsdb.path="$PROM_RUN/data" \
    --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=1h
  wait_http "http://127.0.0.1:$PORT/-/ready" 60 || peer_failed prometheus "$PEERS_RUN/prometheus.log" "$PORT"
  echo "export PROMETHEUS_URL=http://127.0.0.1:$PORT"
  echo "export PROMETHEUS_FILE_SD_DIR=$PROM_RUN/targets"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid prometheus 10 ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
