# Sourced by the comparison scripts: starts one nginx worker serving a small
# static file on 127.0.0.1:$PORT from a temporary directory, and stops it on
# exit. `start_nginx [taskset-cpu-list]` sets $URL and $work.
# NGINX_KEEPALIVE (default 300s) is its keep-alive timeout; NGINX_ACCESS_LOG=1
# logs every request to $work/access.log.
start_nginx() {
  command -v nginx >/dev/null || { echo "$0: nginx not found (apt-get install nginx-light)" >&2; exit 2; }
  work=$(mktemp -d)
  # nginx's worker runs as an unprivileged user: it must be able to read the
  # file (mktemp makes the directory 0700, which turns every answer into 403).
  chmod 755 "$work"
  trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
  mkdir -p "$work/www" "$work/tmp"
  printf 'hello from nginx\n' > "$work/www/index.html"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 8192; }
http {
  access_log $( [ "${NGINX_ACCESS_LOG:-}" = 1 ] && echo "$work/access.log" || echo off );
  keepalive_requests 100000000;
  keepalive_timeout ${NGINX_KEEPALIVE:-300s};
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$PORT; root $work/www; }
}
CONF
  if [ -n "${1:-}" ]; then taskset -c "$1" nginx -c "$work/nginx.conf" -p "$work"; else nginx -c "$work/nginx.conf" -p "$work"; fi
  sleep 0.5
  URL="http://127.0.0.1:$PORT/index.html"
  # Every comparison must measure real 200s, not error pages.
  local status
  status=$(python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)" "$URL" 2>/dev/null || echo none)
  [ "$status" = 200 ] || { echo "$0: nginx answered $status for $URL, not 200 (see $work/error.log)" >&2; exit 2; }
}
