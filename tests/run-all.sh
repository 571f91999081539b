#!/usr/bin/env bash
# The whole test suite: installs and starts the real peers (tests/peers/), runs every test, stops
# the peers by PID. This is the README's test command and what .ci/run calls.
#
#   POOLPILOT_PEERS="spark airflow"  only these peers (default: all of them)
#   POOLPILOT_SKIP_PEERS=1           start no peer; peer tests then say so and pass vacuously
#                                    (never set in CI: with CI=true a missing peer fails)
#   bash tests/run-all.sh --test X    arguments go to `cargo test` (only the chosen targets then)
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_PEERS=(spark airflow moto kube prometheus redis rabbitmq celery superset)
read -r -a peers <<<"${POOLPILOT_PEERS:-${ALL_PEERS[*]}}"

started=()
stop_all() {
  for p in "${started[@]}"; do bash "tests/peers/$p.sh" stop || true; done
}
trap stop_all EXIT INT TERM

if [[ ${POOLPILOT_SKIP_PEERS:-0} != 1 ]]; then
  for p in "${peers[@]}"; do
    [[ -f tests/peers/$p.sh ]] || continue
    echo "== peer $p: install + start" >&2
    bash "tests/peers/$p.sh" install
    started+=("$p")
    env_lines=$(bash "tests/peers/$p.sh" start) || { echo "peer $p failed to start" >&2; exit 1; }
    eval "$env_lines"
  done
fi

# Every target, unless the arguments choose some (`--test daemon_kube`: cargo would ignore the
# choice next to --all-targets).
all_targets=--all-targets
for a in "$@"; do
  [[ $a == -- ]] && break
  case $a in --lib | --bins | --bin | --bin=* | --test | --test=* | --tests | --bench | --bench=* | --benches | --examples | --example | --example=* | --doc) all_targets= ;; esac
done
cargo test $all_targets --no-fail-fast "$@"
