#!/usr/bin/env bash
# Against a real nginx (Debian's nginx-light) on loopback whose keep-alive
# timeout is 1 s: requests sent 1.1 s apart always find their connection
# closed by nginx while idle, and requests 0.9 s apart race its timer. Each
# round compares what loadtest counted with nginx's access log: every
# request nginx answered is an `ok`, none is a false `reset`, and the
# retries are said.
#
#   bash benches/keepalive.sh            # builds a dev binary
#   LOADTEST=target/release/loadtest bash benches/keepalive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || apt-get install -y -q nginx-light >/dev/null
if [ -z "${LOADTEST:-}" ]; then
  cargo build --locked -q --bin loadtest
  LOADTEST=target/debug/loadtest
fi
PORT=${PORT:-58090}
export NGINX_KEEPALIVE=1s NGINX_ACCESS_LOG=1
source benches/nginx.sh
start_nginx

printf '| gap | sent | ok | reset | retried | nginx 200s |\n|---|---|---|---|---|---|\n'
for rate in 0.909 1.111; do
  : > "$work/access.log"
  "$LOADTEST" run --url "$URL" --rate "$rate" --duration 22s --quiet --json "$work/r.json" > /dev/null
  sleep 0.2
  served=$(grep -c '" 200 ' "$work/access.log" || true)
  python3 - "$work/r.json" "$rate" "$served" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
gap = 1 / float(sys.argv[2])
print(f"| {gap:.2f} s | {r['requests']} | {r['ok']} | {r['errors']['reset']} | {r.get('retried', 0)} | {sys.argv[3]} |")
if r["ok"] != int(sys.argv[3]) or r["errors"]["reset"] != 0:
    sys.exit(f"loadtest counted {r['ok']} ok and {r['errors']['reset']} resets; nginx answered {sys.argv[3]}")
PY
done
