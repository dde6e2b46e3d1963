#!/usr/bin/env bash
# The exported tables read as they are in the readers analysts use: a real
# run against the built-in target, `report --export parquet` (and csv), then
# pyarrow, DuckDB and pandas (from PyPI, in a throwaway venv) read every
# file. Counts must come back as integers and text as strings, with no
# conversion, and the sums must match the run's JSON.
#
#   bash benches/export_check.sh            # builds a dev binary
#   LOADTEST=target/release/loadtest bash benches/export_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LOADTEST:-}" ]; then
  cargo build --locked -q --bin loadtest
  LOADTEST=target/debug/loadtest
fi
work=$(mktemp -d)
trap 'kill "${serve:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q pyarrow duckdb pandas

"$LOADTEST" serve --port 0 --workers 4 --service-time exp:5ms --error-rate 0.02 \
  --exit-after 60s > "$work/serve.out" &
serve=$!
for _ in $(seq 50); do grep -q "listening on" "$work/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/serve.out" | head -1)
"$LOADTEST" run --url "$url" --rate 200 --duration 5s --quiet --json "$work/run.json" > /dev/null || true
"$LOADTEST" report "$work/run.json" --out "$work/pq" --export parquet > /dev/null
"$LOADTEST" report "$work/run.json" --out "$work/csv" --export csv > /dev/null

"$work/venv/bin/python" - "$work" <<'PY'
import glob, json, sys
import duckdb, pandas, pyarrow.parquet as pq, pyarrow.types as t

work = sys.argv[1]
run = json.load(open(f"{work}/run.json"))
files = sorted(glob.glob(f"{work}/pq/*.parquet"))
assert files, "no parquet written"
for f in files:
    schema = pq.read_schema(f)
    for field in schema:
        ok = t.is_integer(field.type) or t.is_floating(field.type) or t.is_string(field.type) \
            or t.is_large_string(field.type) or t.is_string_view(field.type)
        assert ok, f"{f}: {field.name} is {field.type}"
    print(f"{f.split('/')[-1]:<28} " + ", ".join(f"{x.name}:{x.type}" for x in schema))
series = f"{work}/pq/run_series.parquet"
s = pq.read_table(series)
for col in ["t_s", "requests", "ok", "errors", "dropped", "http_5xx"]:
    assert t.is_integer(s.schema.field(col).type), f"{col} is {s.schema.field(col).type}"
total = duckdb.sql(f"select sum(requests), sum(ok), sum(http_5xx) from '{series}'").fetchall()[0]
assert total[0] == sum(r["requests"] for r in run["series"]), total
assert total[1] == sum(r["ok"] for r in run["series"]), total
outcomes = pandas.read_parquet(f"{work}/pq/run_outcomes.parquet")
assert str(outcomes["requests"].dtype).startswith("uint"), outcomes.dtypes
assert outcomes["requests"].sum() == run["requests"], (outcomes, run["requests"])
kind = duckdb.sql(f"describe select * from '{work}/pq/run_outcomes.parquet'").fetchall()
assert dict((r[0], r[1]) for r in kind)["outcome"] == "VARCHAR", kind
assert outcomes["outcome"].map(type).eq(str).all(), outcomes.dtypes
print(f"pandas reads the text as {outcomes['outcome'].dtype} of str; DuckDB as VARCHAR")
csv = pandas.read_csv(f"{work}/csv/run_series.csv")
assert str(csv["requests"].dtype) == "int64", csv.dtypes
print(f"duckdb: {total[0]} requests, {total[1]} ok, {total[2]} 5xx over {s.num_rows} seconds; "
      f"pandas reads the counts as {outcomes['requests'].dtype} (parquet) and {csv['requests'].dtype} (csv)")
PY
