"""Prints the figures of docs/benchmarks.md's fifteenth round from the JSON files beside it.

Usage: python3 docs/bench/round15/summarise.py PREFIX...   (e.g. churn-A churn-G)
"""
import glob
import json
import sys

for prefix in sys.argv[1:]:
    for path in sorted(glob.glob(f"{prefix}-[0-9].json")):
        run = json.load(open(path))
        for m in run["models"]:
            us = lambda k: m[k]["p50_ms"] * 1000
            print(
                f"{path}: {m['name']} {m['version']}: 100 rows p50 sandbox {us('predict_rows_in_process'):.0f} µs, "
                f"native {us('predict_rows_native'):.0f} µs, ÷ native {m['sandbox_over_native_rows']:.2f} "
                f"(warm instance {m['warm_instance_over_native_rows']:.2f}, floor {m['floor_over_native_rows']:.2f}); "
                f"1 row sandbox {us('predict_1_row_in_process'):.1f} µs, native {us('predict_1_row_native'):.1f} µs, "
                f"÷ native {m['sandbox_over_native_1_row']:.2f} (floor {m['floor_over_native_1_row']:.2f})"
            )
