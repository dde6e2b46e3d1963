#!/usr/bin/env bash
# Memory stays flat: peak RSS of a long open-model run against a short one
# at the same rate, against one nginx worker on loopback.
#
#   bash benches/memory.sh                  # 1 min vs 10 min at 2000 rps
#   SHORT=10 LONG=60 RATE=5000 bash benches/memory.sh
#
# Needs nginx (Debian) and python3. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=${SHORT:-60}
LONG=${LONG:-600}
RATE=${RATE:-2000}
PORT=${PORT:-18090}
cargo build --release --locked -q --bin loadtest
. benches/nginx.sh
start_nginx
peak_rss_mib() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f}")
PY
}
run() { peak_rss_mib target/release/loadtest run --url "$URL" --rate "$RATE" --duration "${1}s" --quiet --csv "$work/$1.csv" --hdr "$work/$1.hdr" --json "$work/$1.json"; }
short=$(run "$SHORT")
long=$(run "$LONG")
python3 - "$short" "$long" "$SHORT" "$LONG" "$RATE" "$work/$SHORT.json" "$work/$LONG.json" <<'PY'
import json, sys
s, l = float(sys.argv[1]), float(sys.argv[2])
runs = [json.load(open(p)) for p in sys.argv[6:8]]
for d in runs:
    assert d["ok"] == d["requests"], d["errors"]
cs, cl = (d["connections"]["peak"] for d in runs)
print(f"peak connections: {cs} over {sys.argv[3]} s, {cl} over {sys.argv[4]} s (each holds its own buffers: a busy machine that makes the generator lag opens more)")
print(f"{sys.argv[5]} rps: peak RSS {s:.1f} MiB over {sys.argv[3]} s, {l:.1f} MiB over {sys.argv[4]} s: "
      f"long/short = {l/s:.3f} ({'flat' if l <= 1.10 * s else 'GROWS'}; the target is <= 1.10)")
PY
