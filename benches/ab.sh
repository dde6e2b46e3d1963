#!/usr/bin/env bash
# Requests per CPU-second of two loadtest binaries, A and B (say, before and
# after a change to the hot path), interleaved over several rounds because
# this machine is noisy: closed model, 50 connections, against one nginx
# worker serving a small static file on loopback. nginx is pinned to core 0
# and the generator to core 1, so the generator's own CPU time is compared.
# Prints each round and the medians, and B's median over A's. The order
# alternates from round to round.
#
#   bash benches/ab.sh OLD_BINARY NEW_BINARY
#   SCENARIO=benches/two_requests.toml bash benches/ab.sh OLD NEW   # two kinds of request
#   DURATION=5 ROUNDS=7 bash benches/ab.sh /tmp/old/loadtest target/release/loadtest
#
# Needs: nginx (Debian's nginx-light), taskset, python3. Traffic goes to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bash benches/ab.sh A_BINARY B_BINARY" >&2; exit 2; }
A=$1 B=$2
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-50}
PORT=${PORT:-18091}
command -v nginx >/dev/null || apt-get install -y -q nginx-light >/dev/null
. benches/nginx.sh
start_nginx 0

# One run of binary $1 on core 1: "requests cpu_seconds".
measure() {
  python3 - "$1" "$URL" "$DURATION" "$CONNS" "$work/r.json" "${SCENARIO:-}" <<'PY'
import json, resource, subprocess, sys
binary, url, secs, conns, out, scenario = sys.argv[1:]
scn = [scenario] if scenario else []
subprocess.run(["taskset", "-c", "1", binary, "run", *scn, "--url", url, "--connections", conns,
                "--duration", f"{secs}s", "--workers", "1", "--quiet", "--json", out],
               stdout=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
d = json.load(open(out))
assert d["ok"] == d["requests"], d["errors"]
print(d["requests"], r.ru_utime + r.ru_stime)
PY
}

printf '| round | A req/CPU-s | B req/CPU-s |\n|---|---|---|\n'
a_all=() b_all=()
for round in $(seq "$ROUNDS"); do
  # Alternate who goes first, so a drift of the machine favours neither.
  if [ $((round % 2)) -eq 1 ]; then
    read -r na ca < <(measure "$A")
    read -r nb cb < <(measure "$B")
  else
    read -r nb cb < <(measure "$B")
    read -r na ca < <(measure "$A")
  fi
  a=$(python3 -c "print(round($na / $ca))")
  b=$(python3 -c "print(round($nb / $cb))")
  a_all+=("$a") b_all+=("$b")
  printf '| %s | %s | %s |\n' "$round" "$a" "$b"
done
python3 - "${a_all[*]}" "${b_all[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median A {ma:.0f}, B {mb:.0f} requests per CPU-second: B/A = {mb / ma:.3f}")
PY
