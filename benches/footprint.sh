#!/usr/bin/env bash
# Daemon footprint, measured (not asserted): RSS and idle CPU with 20 pools at a 5 s tick in
# shadow mode, and the latency from a source change to the actuator call.
#
#   bash benches/footprint.sh            # builds the release binary, uses moto (tests/peers/moto.sh)
#   SECONDS_IDLE=120 bash benches/footprint.sh
#   POOLPILOT_BIN=target/debug/poolpilot bash benches/footprint.sh   # no release build
#
# Set-up: a static Spark master `/json/` per pool served by python's http.server (so the
# sources do real HTTP), 20 shadow pools on moto Auto Scaling groups (real AWS wire for the
# status reads), plus one `enforce` pool for the latency probe. Prints:
#   rss_mib=<VmRSS after the idle period>  idle_cpu_percent=<% of one core over the idle period>
#   latency_ms=<source change → "scaled the pool up" log line>  tick_ms=5000
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${SECONDS_IDLE:-60}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# POOLPILOT_BIN=target/debug/poolpilot skips the release build (figures are then an upper bound).
BIN=${POOLPILOT_BIN:-target/release/poolpilot}
[[ -n ${POOLPILOT_BIN:-} ]] || cargo build --release --bin poolpilot >&2
bash tests/peers/moto.sh install >&2
eval "$(bash tests/peers/moto.sh start)"
MOTO_PY=${POOLPILOT_CACHE:-$HOME/.cache/poolpilot}/venv-moto/bin/python

# 21 ASGs (20 shadow + 1 latency probe), each at 1 instance.
"$MOTO_PY" - "$POOLPILOT_TEST_AWS_ENDPOINT" <<'PY' >&2
import sys, boto3
ep = sys.argv[1]
ec2 = boto3.client("ec2", endpoint_url=ep, region_name="us-east-1")
asg = boto3.client("autoscaling", endpoint_url=ep, region_name="us-east-1")
ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
try:
    ec2.create_launch_template(LaunchTemplateName="fp-lt", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
except Exception:
    pass
for i in range(21):
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
WWW_PORT=$((20000 + RANDOM % 20000)); PROBE_PORT=$((WWW_PORT + 1)); HTTP_PORT=$((WWW_PORT + 2))
(cd "$WORK/www" && exec python3 -m http.server "$WWW_PORT" --bind 127.0.0.1 >/dev/null 2>&1) & PIDS+=($!)
(cd "$WORK/probe" && exec python3 -m http.server "$PROBE_PORT" --bind 127.0.0.1 >/dev/null 2>&1) & PIDS+=($!)

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
scale_up: { stabilization: 0s, cooldown: 0s }
EOF2
}
for i in $(seq 0 19); do policy "pool-$i" shadow "$WWW_PORT" "fp-$i" >"$WORK/policies/pool-$i.yaml"; done
policy probe enforce "$PROBE_PORT" fp-20 >"$WORK/policies/probe.yaml"
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
hz=$(getconf CLK_TCK)
idle_cpu=$(python3 -c "print(round(100 * ($c1 - $c0) / $hz / ($t1 - $t0), 3))")

# Latency: change the probe's source, wait for the daemon's scale-up log line.
changed_at=$(date +%s.%N)
master_json 6 >"$WORK/probe/json/index.html.tmp" && mv "$WORK/probe/json/index.html.tmp" "$WORK/probe/json/index.html"
for ((i = 0; i < 600; i++)); do grep -q 'scaled the pool up' "$WORK/daemon.log" && break; sleep 0.05; done
grep -q 'scaled the pool up' "$WORK/daemon.log" || fail "no scale-up within 30 s of the source change"
latency_ms=$(python3 - "$changed_at" "$WORK/daemon.log" <<'PY'
import json, sys, datetime
changed = float(sys.argv[1])
for line in open(sys.argv[2]):
    if "scaled the pool up" in line:
        ts = json.loads(line)["timestamp"]
        at = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        print(round((at - changed) * 1000))
        break
PY
)
echo "pools=20(shadow)+1(enforce) tick_ms=5000 idle_seconds=$IDLE"
echo "rss_mib=$(python3 -c "print(round($rss_kib / 1024, 1))") idle_cpu_percent=$idle_cpu latency_ms=$latency_ms (bound: tick + 100 = 5100)"
bash tests/peers/moto.sh stop
