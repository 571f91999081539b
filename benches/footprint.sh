#!/usr/bin/env bash
# Daemon footprint, measured (not asserted): RSS and idle CPU with 20 pools at a 5 s tick in
# shadow mode, and the latency from a source change to the actuator call.
#
#   bash benches/footprint.sh     # builds the shipped binary (`--profile dist`), installs moto
#   SECONDS_IDLE=120 POOLS=20 SAMPLES=4 bash benches/footprint.sh   # the defaults: 60, 20, 4
#   POOLPILOT_BIN=target/debug/poolpilot bash benches/footprint.sh   # any binary, no build
#
# Set-up: a static Spark master `/json/` per pool served by python (so the sources do real
# HTTP), POOLS shadow pools on Auto Scaling groups of its own moto server (the real AWS wire for
# the status reads), plus one `enforce` pool for the latency probe. Prints:
#   rss_mib=<VmRSS after the idle period> (anon, file-backed, threads)
#   idle_cpu_percent=<% of one core over the idle period>
#   tick_work_mean_ms=<mean time of one tick's work>
#   latency_ms=<source change → "scaled the pool up" log line, SAMPLES changes at random phases>
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${SECONDS_IDLE:-60}
POOLS=${POOLS:-20}
SAMPLES=${SAMPLES:-6} # at most 9: the probe pool tops out at max 10
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# POOLPILOT_BIN skips the build (a debug binary gives an upper bound).
BIN=${POOLPILOT_BIN:-${CARGO_TARGET_DIR:-target}/dist/poolpilot}
[[ -n ${POOLPILOT_BIN:-} ]] || cargo build --profile dist --bin poolpilot >&2
bash tests/peers/moto.sh install >&2
source tests/peers/lib.sh # pick_port: a free port below the ephemeral range (see lib.sh)
# Its own moto on its own port: a test run's moto (port 5000) is left alone.
MOTO_ENV=$PEERS_CACHE/venv-moto
MOTO_PORT=$(pick_port)
"$MOTO_ENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 & PIDS+=($!)
export POOLPILOT_TEST_AWS_ENDPOINT=http://127.0.0.1:$MOTO_PORT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
for ((i = 0; i < 300; i++)); do curl -sf "$POOLPILOT_TEST_AWS_ENDPOINT/moto-api/" >/dev/null && break; sleep 0.2; done
MOTO_PY=$MOTO_ENV/bin/python

# POOLS shadow ASGs + 1 latency probe, each at 1 instance.
"$MOTO_PY" - "$POOLPILOT_TEST_AWS_ENDPOINT" "$((POOLS + 1))" <<'PY' >&2
import sys, boto3
ep = sys.argv[1]
ec2 = boto3.client("ec2", endpoint_url=ep, region_name="us-east-1")
asg = boto3.client("autoscaling", endpoint_url=ep, region_name="us-east-1")
ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
try:
    ec2.create_launch_template(LaunchTemplateName="fp-lt", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
except Exception:
    pass
for i in range(int(sys.argv[2])):
    asg.create_auto_scaling_group(AutoScalingGroupName=f"fp-{i}", MinSize=0, MaxSize=20, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": "fp-lt"}, AvailabilityZones=["us-east-1a"])
PY

master_json() { # waiting apps
  local apps="" i
  for ((i = 0; i < $1; i++)); do apps+="${apps:+,}{\"id\":\"app-$i\",\"cores\":0,\"state\":\"WAITING\"}"; done
  printf '{"url":"spark://x:7077","workers":[],"aliveworkers":1,"cores":4,"coresused":2,"activeapps":[%s],"activedrivers":[],"status":"ALIVE"}' "$apps"
}
mkdir -p "$WORK/www/json" "$WORK/probe/json" "$WORK/policies"
master_json 3 >"$WORK/www/json/index.html"
master_json 0 >"$WORK/probe/json/index.html"
WWW_PORT=$(pick_port); PROBE_PORT=$(pick_port); HTTP_PORT=$(pick_port)
# python's http.server, but with a listen backlog for 20 concurrent polls (its default of 5
# drops SYNs, and the kernel's 1 s SYN retry would then be measured as poolpilot's latency).
serve() { # dir port
  (cd "$1" && exec python3 -c '
import sys, http.server, functools
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
Server(("127.0.0.1", int(sys.argv[1])), Quiet).serve_forever()' "$2" >/dev/null 2>&1) &
  PIDS+=($!)
}
serve "$WORK/www" "$WWW_PORT"
serve "$WORK/probe" "$PROBE_PORT"

policy() { # name mode port group
  cat <<EOF2
pool: $1
mode: $2
signals:
  - spark: { master: "http://127.0.0.1:$3", cores_per_waiting_app: 2 }
    per_worker: 2
workers:
  aws_asg: { group: $4, region: us-east-1, endpoint_url: "$POOLPILOT_TEST_AWS_ENDPOINT" }
bounds: { min: 1, max: 10 }
scale_up: { stabilization: 0s, cooldown: 0s, max_step: { workers: 10, period: 1s } }
EOF2
}
for ((i = 0; i < POOLS; i++)); do policy "pool-$i" shadow "$WWW_PORT" "fp-$i" >"$WORK/policies/pool-$i.yaml"; done
policy probe enforce "$PROBE_PORT" "fp-$POOLS" >"$WORK/policies/probe.yaml"
cat >"$WORK/settings.yaml" <<EOF2
tick: 5s
listen: 127.0.0.1:$HTTP_PORT
policy_dir: $WORK/policies
state_path: $WORK/state.json
log_format: json
EOF2
for v in $(env | grep -o '^POOLPILOT_[A-Z_]*'); do unset "$v"; done
RUST_LOG=info "$BIN" run --config "$WORK/settings.yaml" 2>"$WORK/daemon.log" & DAEMON=$!; PIDS+=($DAEMON)
fail() { echo "footprint: $1; daemon log:" >&2; tail -20 "$WORK/daemon.log" >&2; exit 1; }
for ((i = 0; i < 300; i++)); do curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || fail "daemon not ready after 60 s"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$DAEMON/stat"; }
sleep 10 # past start-up
c0=$(cpu_ticks); t0=$(date +%s.%N)
sleep "$IDLE"
c1=$(cpu_ticks); t1=$(date +%s.%N)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$DAEMON/status")
anon_kib=$(awk '/RssAnon/ {print $2}' "/proc/$DAEMON/status")
file_kib=$(awk '/RssFile/ {print $2}' "/proc/$DAEMON/status")
threads=$(awk '/Threads/ {print $2}' "/proc/$DAEMON/status")
hz=$(getconf CLK_TCK)
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics.txt"
mean_ms() { # mean of a histogram/summary over all its series
  awk -v m="$1" '$1 ~ "^"m"_sum" {s+=$2} $1 ~ "^"m"_count" {c+=$2} END {if (c) printf "%d", 1000 * s / c}' "$WORK/metrics.txt"
}
tick_mean_ms=$(mean_ms poolpilot_tick_duration_seconds)
echo "mean source poll ms: $(mean_ms poolpilot_source_poll_duration_seconds), mean actuator call ms: $(mean_ms poolpilot_actuator_call_duration_seconds)" >&2
idle_cpu=$(python3 -c "print(round(100 * ($c1 - $c0) / $hz / ($t1 - $t0), 3))")

# Latency: SAMPLES source changes at random phases of the tick; each one's time until the
# daemon logs the scale-up (after the actuator call returned, so an upper bound of "to the call").
scale_ups() { grep -c 'scaled the pool up' "$WORK/daemon.log" || true; }
latencies=()
for ((k = 1; k <= SAMPLES; k++)); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(0, 5), 3))')"
  changed_at=$(date +%s.%N)
  master_json "$k" >"$WORK/probe/json/index.html.tmp" && mv "$WORK/probe/json/index.html.tmp" "$WORK/probe/json/index.html"
  for ((i = 0; i < 600; i++)); do (($(scale_ups) >= k)) && break; sleep 0.02; done
  (($(scale_ups) >= k)) || fail "no scale-up within 12 s of source change $k"
  latencies+=("$(python3 - "$changed_at" "$WORK/daemon.log" "$k" <<'PY'
import json, sys, datetime
changed, k = float(sys.argv[1]), int(sys.argv[3])
ups = [l for l in open(sys.argv[2]) if "scaled the pool up" in l]
ts = json.loads(ups[k - 1])["timestamp"]
at = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
print(round((at - changed) * 1000))
PY
)")
done
latency_summary=$(python3 -c "import sys; v = sorted(map(int, sys.argv[1:])); print(f'max {v[-1]} median {v[len(v) // 2]} all {v}')" "${latencies[@]}")
echo "pools=$POOLS(shadow)+1(enforce) tick_ms=5000 idle_seconds=$IDLE"
mib() { python3 -c "print(round($1 / 1024, 1))"; }
echo "tick_work_mean_ms=$tick_mean_ms (observe + decide + actuate + persist, per tick)"
echo "rss_mib=$(mib "$rss_kib") (anon $(mib "$anon_kib"), file $(mib "$file_kib"), threads $threads) idle_cpu_percent=$idle_cpu "
echo "latency_ms: $latency_summary (bound: tick + 100 = 5100)"
