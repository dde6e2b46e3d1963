#!/usr/bin/env bash
# The forecast against a real stack (issue #12): starts nginx, two gunicorn
# app replicas, PostgreSQL 15 and Redis 7 on loopback (installed from
# Debian's packages, benches/real_stack/stack.sh), then runs ROUNDS times
#   loadtest plan scenarios/real-stack.toml --verify
# which finds replica 1's capacity, fits the model to the steps, predicts
# 20%..110% of capacity for one replica and for both replicas behind nginx,
# and measures them; prints the medians (benches/real_stack/table.py).
#   ROUNDS=3 STEP=10s bash benches/real_stack.sh
# LOADTEST=target/debug/loadtest uses a dev build instead of building a
# release one (the measuring path is optimised in both). Needs root (apt,
# cgroups for the replicas' CPU limits). Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEP=${STEP:-10s}
LEVELS=${LEVELS:-0.2,0.4,0.6,0.8,0.9,1.0,1.1}
if [ -z "${LOADTEST:-}" ]; then
  cargo build --release --locked
  LOADTEST=target/release/loadtest
fi
# shellcheck source=real_stack/stack.sh
source benches/real_stack/stack.sh
start_stack
out=$(mktemp -d /tmp/loadtest-real-stack.XXXXXX)
echo "stack up; results in $out" >&2
for i in $(seq "$ROUNDS"); do
  # The generator shares the shared tier's core; the app replicas have core $APP_CPU.
  code=0
  taskset -c "$SHARED_CPU" "$LOADTEST" plan scenarios/real-stack.toml --out "$out/round$i" \
    --step "$STEP" --verify --verify-url http://127.0.0.1:58080/item --verify-replicas 2 \
    --verify-levels "$LEVELS" --allow-bad-fit --quiet > "$out/round$i.log" 2>&1 || code=$?
  fit=$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["calibration"]
who = "%d worker(s)" % c["workers"]
if c.get("cores"):
    who += " sharing %d core(s), %.0f%% per extra runnable" % (c["cores"], 100 * c.get("switch_cost", 0))
print("fit: %s x %.2f ms + %.2f ms floor, spread %.2f = %.0f rps; max p95 error on fitted %.0f%%" % (
    who, c["service_mean_ms"], c["latency_floor_ms"], c.get("spread", 1), c["capacity_rps"], 100 * c["max_p95_error"]))
' "$out/round$i/forecast.json" 2>/dev/null || echo "no fit")
  echo "round $i: exit $code ($fit)" >&2
  [ -f "$out/round$i/verify.json" ] || { cat "$out/round$i.log" >&2; exit 1; }
done
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); app replicas on core $APP_CPU (CPU quota: ${REPLICA_CPU_PCT}% each, 0 = none), $APP_WORKERS gunicorn workers; nginx, PostgreSQL, Redis and the generator on core $SHARED_CPU"
python3 benches/real_stack/table.py "$out"/round*/verify.json
