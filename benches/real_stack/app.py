"""The application of benches/real_stack.sh: a small product-page service.

GET /item       one item page: Redis first (a Zipf-like key popularity, so
                 cold keys miss), on a miss two PostgreSQL queries (the item
                 by primary key and an aggregate over its orders), then
                 cached (Redis evicts by LRU at its maxmemory); then the page
                 is rendered in Python, which is where most of the CPU goes,
                 as in a template-heavy service.
GET /health     liveness, no database work.

Each gunicorn sync worker holds one PostgreSQL connection and one Redis
connection for its life, as a connection-per-worker app does.
"""
import json
import os
import random

import psycopg2
import redis

PG_DSN = os.environ.get("LT_PG_DSN", "host=127.0.0.1 port=55432 dbname=lt user=postgres")
REDIS_PORT = int(os.environ.get("LT_REDIS_PORT", "56379"))
ITEMS = int(os.environ.get("LT_ITEMS", "20000"))
# Rendering work per request (loop iterations): sets the app tier's CPU cost.
RENDER = int(os.environ.get("LT_RENDER", "3000"))

_pg = None
_rc = None


def _db():
    global _pg
    if _pg is None or _pg.closed:
        _pg = psycopg2.connect(PG_DSN)
        _pg.autocommit = True
    return _pg


def _cache():
    global _rc
    if _rc is None:
        _rc = redis.Redis(host="127.0.0.1", port=REDIS_PORT)
    return _rc


def _pick_item():
    # Pareto ranks: a few hot items, a long tail of cold ones.
    return min(int(random.paretovariate(1.1)), ITEMS)


def _load(item_id):
    cur = _db().cursor()
    cur.execute("SELECT id, name, price_cents, stock FROM items WHERE id = %s", (item_id,))
    row = cur.fetchone()
    cur.execute(
        "SELECT count(*), coalesce(sum(qty), 0) FROM orders WHERE item_id = %s", (item_id,)
    )
    orders, qty = cur.fetchone()
    cur.close()
    return {"id": row[0], "name": row[1], "price_cents": row[2], "stock": row[3],
            "orders": orders, "sold": int(qty)}


def _render(item):
    parts = []
    for i in range(RENDER):
        parts.append("<li>%s #%d: %d.%02d</li>" % (item["name"], i, item["price_cents"] // 100,
                                                   item["price_cents"] % 100))
    return ("<html><body><h1>%s</h1><ul>%s</ul><p>%d sold</p></body></html>"
            % (item["name"], "".join(parts[:20]), item["sold"] + len(parts))).encode()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        body = b"ok\n"
    else:
        item_id = _pick_item()
        key = "item:%d" % item_id
        cache = _cache()
        raw = cache.get(key)
        if raw is None:
            item = _load(item_id)
            cache.set(key, json.dumps(item))
        else:
            item = json.loads(raw)
        body = _render(item)
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]
