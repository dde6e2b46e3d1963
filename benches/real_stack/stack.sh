# Sourced by benches/real_stack.sh: installs (from Debian's packages) and
# starts on loopback a stack of the kind our users run, and stops it on exit:
#   nginx (1 worker)  127.0.0.1:58080  round-robin over both app replicas
#                     127.0.0.1:58081  app replica 1 only
#                     127.0.0.1:58082  app replica 2 only
#   gunicorn          127.0.0.1:58001, :58002  (benches/real_stack/app.py, sync workers)
#   PostgreSQL 15     127.0.0.1:55432  max_connections 100, 20k items, 200k orders
#   Redis 7           127.0.0.1:56379  maxmemory 256mb, allkeys-lru
# The app replicas run on core $APP_CPU; the database, cache and balancer
# are shared, as they are in production, and run on core $SHARED_CPU (with
# the load generator), where they have room. On a 2-core machine the two
# replicas therefore share one core: two replicas are not twice one, and
# the model (which assumes independent replicas) is expected to miss the
# 2-replica case. REPLICA_CPU_PCT=50 puts each replica in a cgroup with a
# CFS quota of half the core (a Kubernetes CPU limit) to make them
# independent, but on this stack the quota's throttling itself stalls the
# app for 100-500 ms at 60% load and more, so it is off by default.
STACK_APT=(nginx-light postgresql-15 redis-server gunicorn python3-psycopg2 python3-redis)
APP_CPU=${APP_CPU:-0}
SHARED_CPU=${SHARED_CPU:-1}
REPLICA_CPU_PCT=${REPLICA_CPU_PCT:-0}
APP_WORKERS=${APP_WORKERS:-4}

install_stack() {
  local missing=()
  for p in "${STACK_APT[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

stop_stack() {
  [ -n "${stack:-}" ] || return 0
  [ -f "$stack/nginx.pid" ] && kill "$(cat "$stack/nginx.pid")" 2>/dev/null
  # SIGINT: gunicorn's quick shutdown (SIGTERM waits up to 30 s for workers).
  for p in "$stack"/gunicorn*.pid; do [ -f "$p" ] && kill -INT "$(cat "$p")" 2>/dev/null; done
  [ -f "$stack/redis.pid" ] && kill "$(cat "$stack/redis.pid")" 2>/dev/null
  [ -d "$stack/pg" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$stack/pg" -m fast stop >/dev/null 2>&1
  # A cgroup can be removed once its processes (gunicorn's workers) are gone.
  local g dir
  for g in "$stack"/cg.*; do
    [ -f "$g" ] || continue
    dir="/sys/fs/cgroup/cpu/$(cat "$g")"
    for _ in $(seq 50); do [ -s "$dir/cgroup.procs" ] || break; sleep 0.2; done
    rmdir "$dir" 2>/dev/null
  done
  rm -rf "$stack"
  stack=""
}

# wait_http URL: until it answers 200, at most 20 s.
wait_http() {
  for _ in $(seq 100); do
    [ "$(python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).status)' "$1" 2>/dev/null)" = 200 ] && return 0
    sleep 0.2
  done
  echo "$0: $1 did not answer 200 (logs in $stack)" >&2; return 1
}

# A cgroup with a CPU quota of $REPLICA_CPU_PCT% of one core, over a 2 ms
# period (the shorter the period, the more throttling acts as a slower CPU
# rather than as pauses).
replica_cgroup() {
  local name="loadtest_replica_$1_$$" dir
  dir="/sys/fs/cgroup/cpu/$name"
  mkdir -p "$dir"
  echo 2000 > "$dir/cpu.cfs_period_us"
  echo $((REPLICA_CPU_PCT * 20)) > "$dir/cpu.cfs_quota_us"
  echo "$name" > "$stack/cg.$1"
  echo "$dir"
}

start_stack() {
  install_stack
  # Empty groups an earlier run left behind (rmdir refuses a busy one).
  rmdir /sys/fs/cgroup/cpu/loadtest_replica_* 2>/dev/null || true
  stack=$(mktemp -d /tmp/loadtest-stack.XXXXXX)
  chmod 755 "$stack"
  trap stop_stack EXIT
  local pgbin=/usr/lib/postgresql/15/bin on="taskset -c $SHARED_CPU"
  # PostgreSQL: a fresh cluster on loopback.
  mkdir "$stack/pg"; chown postgres "$stack/pg"
  runuser -u postgres -- $pgbin/initdb -D "$stack/pg" -A trust -U postgres >"$stack/initdb.log" 2>&1
  cat >> "$stack/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = 55432
unix_socket_directories = '$stack/pg'
max_connections = 100
shared_buffers = 128MB
fsync = off
CONF
  $on runuser -u postgres -- $pgbin/pg_ctl -D "$stack/pg" -l "$stack/pg/server.log" -w start >/dev/null
  psql -q -h 127.0.0.1 -p 55432 -U postgres -c 'CREATE DATABASE lt' >/dev/null
  psql -q -h 127.0.0.1 -p 55432 -U postgres -d lt >/dev/null <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL, stock int NOT NULL);
INSERT INTO items SELECT i, 'item ' || i, 100 + (i * 37) % 10000, (i * 13) % 500 FROM generate_series(1, 20000) i;
CREATE TABLE orders (id serial PRIMARY KEY, item_id int NOT NULL, qty int NOT NULL);
INSERT INTO orders (item_id, qty) SELECT 1 + (i * 7919) % 20000, 1 + i % 5 FROM generate_series(1, 200000) i;
CREATE INDEX orders_item ON orders (item_id);
ANALYZE;
SQL
  # Redis: a 256 MB LRU cache, no persistence.
  $on redis-server --bind 127.0.0.1 --port 56379 --maxmemory 256mb --maxmemory-policy allkeys-lru \
    --save '' --appendonly no --daemonize yes --pidfile "$stack/redis.pid" --logfile "$stack/redis.log" --dir "$stack"
  # Two app replicas (each in a CPU-limited cgroup if REPLICA_CPU_PCT > 0).
  # The workers' heartbeat files go to /dev/shm: on a disk-backed /tmp,
  # gunicorn's fchmod heartbeat can block a worker behind a journal commit.
  local r cg
  for r in 1 2; do
    ( if [ "$REPLICA_CPU_PCT" -gt 0 ]; then cg=$(replica_cgroup $r); echo $BASHPID > "$cg/cgroup.procs"; fi
      exec taskset -c "$APP_CPU" gunicorn --chdir "$(dirname "${BASH_SOURCE[0]}")" --workers "$APP_WORKERS" \
        --bind 127.0.0.1:5800$r --pid "$stack/gunicorn$r.pid" --log-file "$stack/gunicorn$r.log" \
        --backlog 2048 --worker-tmp-dir /dev/shm --daemon app:app )
  done
  # nginx: the load balancer.
  mkdir -p "$stack/tmp"
  cat > "$stack/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $stack/nginx.pid;
error_log $stack/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $stack/tmp; proxy_temp_path $stack/tmp; fastcgi_temp_path $stack/tmp;
  uwsgi_temp_path $stack/tmp; scgi_temp_path $stack/tmp;
  upstream both { server 127.0.0.1:58001; server 127.0.0.1:58002; keepalive 64; }
  upstream one  { server 127.0.0.1:58001; keepalive 64; }
  upstream two  { server 127.0.0.1:58002; keepalive 64; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_read_timeout 60s;
  server { listen 127.0.0.1:58080; location / { proxy_pass http://both; } }
  server { listen 127.0.0.1:58081; location / { proxy_pass http://one; } }
  server { listen 127.0.0.1:58082; location / { proxy_pass http://two; } }
}
CONF
  $on nginx -c "$stack/nginx.conf" -p "$stack"
  wait_http http://127.0.0.1:58081/item && wait_http http://127.0.0.1:58082/item && wait_http http://127.0.0.1:58080/item
}
