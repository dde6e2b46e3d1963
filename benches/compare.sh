#!/usr/bin/env bash
# Requests per CPU-second of the load generator: loadtest vs wrk vs oha,
# interleaved over several rounds (this machine is noisy; medians are quoted),
# closed model, against one nginx worker serving a small static file on
# loopback. nginx is pinned to core 0 and the generator to core 1, so the
# generator's own CPU time is what is compared (loadtest also without its
# idle wait, `--coalesce 0`, to show that part's share). Also checks that the open
# model holds 40,000 rps on one generator core.
#
#   bash benches/compare.sh            # 10 s per tool
#   DURATION=5 ROUNDS=5 bash benches/compare.sh
#   BEFORE=/path/to/older/loadtest bash benches/compare.sh
#   LOADTEST=/path/to/loadtest ...     # a given build instead of this tree's
#                                      # also an older build, in the same
#                                      # rounds: the hot path's cost of a change
#
# Needs: nginx and wrk (Debian), oha (`cargo install --locked oha`), python3.
# Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
OPEN_RATE=${OPEN_RATE:-40000}
PORT=${PORT:-18089}
OHA=${OHA:-$(command -v oha || echo /tmp/oha/bin/oha)}
for tool in wrk taskset python3 "$OHA"; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found (apt-get install nginx-light wrk; cargo install --locked oha)" >&2; exit 2; }
done
# LOADTEST=path runs that binary instead of building this tree's.
if [ -z "${LOADTEST:-}" ]; then
  cargo build --release --locked -q --bin loadtest
  LOADTEST=target/release/loadtest
fi

. benches/nginx.sh
start_nginx 0

# cpu_of CMD...: runs CMD on core 1 and prints the CPU seconds it used (user+sys).
cpu_of() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    subprocess.run(["taskset", "-c", "1"] + sys.argv[2:], stdout=out, stderr=subprocess.STDOUT, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.3f}")
PY
}

echo "closed model, $CONNS connections, ${DURATION}s per run, $ROUNDS interleaved rounds, nginx on core 0, generator on core 1"
: > "$work/rows"
for round in $(seq "$ROUNDS"); do
  c=$(cpu_of "$work/wrk.out" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$URL")
  ! grep -q "Non-2xx\|Socket errors" "$work/wrk.out" || { cat "$work/wrk.out"; echo "compare.sh: wrk saw errors" >&2; exit 1; }
  echo "wrk $(awk '/requests in/ {print $1}' "$work/wrk.out") $c" >> "$work/rows"
  c=$(cpu_of "$work/oha.out" "$OHA" -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json "$URL")
  echo "oha $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['statusCodeDistribution']; e=set(d.get('errorDistribution') or {}) - {'aborted due to deadline'}; assert set(s) == {'200'} and not e, (s, e); print(s['200'])" "$work/oha.out") $c" >> "$work/rows"
  # loadtest as shipped, and without its idle wait (--coalesce 0) to show
  # what that part is worth.
  for co in 50us 0 before; do
    bin=$LOADTEST; name=loadtest; flag=50us
    [ "$co" = 0 ] && { name=lt-nowait; flag=0; }
    if [ "$co" = before ]; then
      [ -n "${BEFORE:-}" ] || continue
      bin=$BEFORE; name=before
    fi
    c=$(cpu_of "$work/lt.out" "$bin" run --url "$URL" --connections "$CONNS" --workers 1 --duration "${DURATION}s" --coalesce "$flag" --quiet --json "$work/lt.json")
    echo "$name $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['ok'] == d['requests'], d['errors']; print(d['ok'])" "$work/lt.json") $c" >> "$work/rows"
  done
done
python3 - "$work/rows" "$DURATION" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
d = float(sys.argv[2])
per = {}
for name, n, c in rows:
    per.setdefault(name, []).append((float(n), float(c)))
print(f"{'tool':<10} {'req/s (median)':>15} {'req per cpu-s (median)':>23}   each round")
med = {}
for name in [n for n in ["wrk", "oha", "loadtest", "lt-nowait", "before"] if n in per]:
    eff = [n / c for n, c in per[name]]
    med[name] = statistics.median(eff)
    rate = statistics.median([n / d for n, _ in per[name]])
    print(f"{name:<10} {rate:>15.0f} {med[name]:>23.0f}   " + " ".join(f"{e:.0f}" for e in eff))
print(f"loadtest/wrk = {med['loadtest']/med['wrk']:.2f}x   loadtest/oha = {med['loadtest']/med['oha']:.2f}x   (medians of requests per CPU-second)")
print(f"without the idle wait (--coalesce 0): loadtest/wrk = {med['lt-nowait']/med['wrk']:.2f}x   loadtest/oha = {med['lt-nowait']/med['oha']:.2f}x")
if "before" in med:
    print(f"this build / BEFORE = {med['loadtest']/med['before']:.3f}x (medians of requests per CPU-second)")
PY

echo
echo "open model: $OPEN_RATE rps for ${DURATION}s on one generator core"
open_cpu=$(cpu_of "$work/open.out" "$LOADTEST" run --url "$URL" --rate "$OPEN_RATE" --workers 1 --duration "${DURATION}s" --quiet --json "$work/open.json")
python3 - "$work/open.json" "$open_cpu" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d['ok'] == d['requests'], d['errors']
print(f"target {d['target_rps']:.0f} rps, achieved {d['rps']:.0f} rps ({100*d['rps']/d['target_rps']:.2f}%), "
      f"dropped {d['dropped']}, p50 {d['latency_ms']['p50']:.3f} ms, p99 {d['latency_ms']['p99']:.3f} ms, "
      f"connections peak {d['connections']['peak']}, generator cpu {float(sys.argv[2]):.2f} s")
PY
