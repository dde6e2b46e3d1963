#!/usr/bin/env bash
# A distributed run against a real server: SHARDS `loadtest run --shard j/N`
# processes started together by --start-at against one nginx worker on
# loopback, merged by `loadtest merge`, then the same schedule from one
# process. Prints both results side by side (requests must be equal; the
# percentiles agree within run-to-run noise) and the merge's per-shard
# table, and times the merge of the shard files.
#
#   bash benches/distributed.sh                   # 4 shards, 8000 rps, 10 s
#   SHARDS=3 RATE=20000 DURATION=20 bash benches/distributed.sh
#   LOADTEST=target/debug/loadtest bash benches/distributed.sh
#
# Installs nginx-light from Debian's packages if it is missing (needs root
# or sudo). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${SHARDS:-4}
RATE=${RATE:-8000}
DURATION=${DURATION:-10}
PORT=${PORT:-18091}
if ! command -v nginx >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null
fi
if [ -z "${LOADTEST:-}" ]; then
  cargo build --release --locked -q --bin loadtest
  LOADTEST=target/release/loadtest
fi
. benches/nginx.sh
start_nginx
out=$work/out
mkdir -p "$out"
start=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)+d.timedelta(seconds=3)).isoformat(timespec="milliseconds").replace("+00:00","Z"))')
pids=()
for ((j = 0; j < SHARDS; j++)); do
  "$LOADTEST" run --url "$URL" --rate "$RATE" --duration "${DURATION}s" --workers 1 --quiet \
    --shard "$j/$SHARDS" --start-at "$start" --json "$out/shard$j.json" 2>"$out/shard$j.err" >/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "distributed.sh: a shard failed:" >&2; cat "$out"/shard*.err >&2; exit 1; }; done
t0=$(date +%s.%N)
"$LOADTEST" merge "$out"/shard*.json --json "$out/merged.json" > "$out/merge.txt"
t1=$(date +%s.%N)
"$LOADTEST" run --url "$URL" --rate "$RATE" --duration "${DURATION}s" --workers 1 --quiet \
  --json "$out/whole.json" >/dev/null
head -n $((SHARDS + 1)) "$out/merge.txt"
python3 - "$out/merged.json" "$out/whole.json" "$SHARDS" "$t0" "$t1" <<'PY'
import json, sys
m, w = (json.load(open(p)) for p in sys.argv[1:3])
n, t0, t1 = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
print(f"{'':24}{'merged ' + str(n) + ' shards':>18}{'one process':>14}")
for key in ["requests", "dropped", "rps"]:
    print(f"{key:24}{m[key]:>18.1f}{w[key]:>14.1f}")
for p in ["p50", "p90", "p99", "p999", "max"]:
    print(f"{'latency ' + p + ' ms':24}{m['latency_ms'][p]:>18.3f}{w['latency_ms'][p]:>14.3f}")
print(f"merge of {n} shard files: {t1 - t0:.3f} s")
ok = m["requests"] == w["requests"] and m["dropped"] == w["dropped"] == 0
print("requests equal, none dropped" if ok else "MISMATCH: requests or drops differ")
sys.exit(0 if ok else 1)
PY
