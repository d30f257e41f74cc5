#!/usr/bin/env python3
"""The linear memory one call's instance reaches, per model and request size.

Serve a repository with the sandbox's trace log on, written to a file:

    RUST_LOG=info,trademl::sandbox=trace trademl serve --models models \
        --listen 127.0.0.1:18092 > server.log 2>&1 &
    docs/bench/round18/instance-memory.py 18092 server.log

For each first-party Rust model, the first example of its manifest is sent
with its rows repeated 1, 10, 100 and 1000 times; the largest `desired` size
the log shows while the request is served (its instance's growth, and the
creation of the spare made after it, whose size is the initial memory) is
printed in MiB, with the number of growths logged.
"""
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

MODELS = ["anomaly-detection", "churn", "customer-segmentation", "recommender", "sentiment",
          "demand-forecast", "price-optimizer", "promo-effectiveness"]


def tile(tensor, k):
    tensor = dict(tensor)
    tensor["shape"] = [tensor["shape"][0] * k] + tensor["shape"][1:]
    tensor["data"] = tensor["data"] * k
    return tensor


def main():
    port, log = sys.argv[1], sys.argv[2]
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    for model in MODELS:
        with open(os.path.join(root, "guest-models", model, "manifest.json")) as f:
            example = json.load(f)["examples"][0]
        for k in (1, 10, 100, 1000):
            body = json.dumps({"inputs": [tile(t, k) for t in example["inputs"]]}).encode()
            before = os.path.getsize(log)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v2/models/{model}/infer", data=body,
                headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=120) as r:
                    status = r.status
                    r.read()
            except urllib.error.HTTPError as e:
                status = e.code
            time.sleep(0.3)
            with open(log) as f:
                f.seek(before)
                sizes = [int(x) for x in re.findall(r"desired=(\d+)", f.read())]
            rows = example["inputs"][0]["shape"][0] * k
            print(f"{model:22s} rows={rows:6d} status={status} body={len(body) // 1024:5d} KiB "
                  f"largest={max(sizes, default=0) / 2**20:6.2f} MiB growths={len(sizes)}",
                  flush=True)


if __name__ == "__main__":
    main()
