"""Prints the medians of several `loadtest plan --verify` runs' verify.json
as one table: rate, predicted and measured p95, error, predicted and
measured goodput, for each replica count and load level."""
import json
import statistics
import sys

rows = {}
for path in sys.argv[1:]:
    with open(path) as f:
        for c in json.load(f)["cases"]:
            key = (c["replicas"], round(c["level"], 2))
            rows.setdefault(key, []).append(c)

med = statistics.median
print(f"{'replicas':>8} {'level':>6} {'rate':>8} {'role':>10} {'p95 pred':>9} {'p95 meas':>9} "
      f"{'p95 err':>8} {'gput pred':>10} {'gput meas':>10} {'gput err':>9} {'saturated (meas/pred)':>22}")
for (n, level), cs in sorted(rows.items()):
    sat = f"{sum(c['measured_saturated'] for c in cs)}/{sum(c['predicted_saturated'] for c in cs)} of {len(cs)}"
    print(f"{n:>8} {100 * level:>5.0f}% {med(c['offered_rps'] for c in cs):>8.1f} {cs[0]['role']:>10} "
          f"{med(c['predicted_p95_ms'] for c in cs):>9.2f} {med(c['measured_p95_ms'] for c in cs):>9.2f} "
          f"{100 * med(c['p95_error'] for c in cs):>7.1f}% {med(c['predicted_rps'] for c in cs):>10.1f} "
          f"{med(c['measured_rps'] for c in cs):>10.1f} {100 * med(c['rps_error'] for c in cs):>8.1f}% {sat:>22}")
print(f"({len(sys.argv) - 1} runs; each cell the median)")
