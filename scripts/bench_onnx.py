"""The driver of scripts/bench-onnx (run it through that script).

1. `trademl pack --onnx` each fixture (wall time of the command, and the
   phases it reports), sign it with a throwaway key, into a repository;
2. `trademl bench` on that repository: cold load (verify + compile + checks,
   fresh engine: Winch's code for the runner, after which the model serves),
   the server's background compile with Cranelift (+ checks) that replaces
   it, one-row prediction in process with Winch's and with Cranelift's code,
   and over HTTP on loopback (Cranelift's code);
3. onnxruntime, in this process, on the same model and the same row (the
   first row of the fixture's reference inputs, which is the row trademl
   bench takes from the manifest's example), one intra-op thread;
4. the ratios, trademl / onnxruntime, of the p50s;
5. with --before BINARY (an older trademl, which compiles the runner with
   Cranelift at pack and at load), the first model packed and cold-loaded
   by that binary too, in the same run, for comparison.
"""

import argparse
import atexit
import json
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "onnx"
MODELS = [
    "sklearn-scaler-logistic",
    "sklearn-linear",
    "sklearn-random-forest",
    "sklearn-gradient-boosting",
    "sklearn-random-forest-regressor",
    "sklearn-kmeans",
    "sklearn-mlp-classifier",
    "sklearn-mlp-regressor",
    "torch-mlp",
    "torch-lstm",
    "torch-gru",
]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def first_row(tensor):
    shape = tensor["shape"]
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    dtype = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}[tensor["datatype"]]
    return np.array(tensor["data"][:per_row], dtype=dtype).reshape([1] + shape[1:])


def ort_p50_ms(name, requests):
    reference = json.loads((FIXTURES / f"{name}.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {t["name"]: first_row(t) for t in reference["inputs"]}
    for _ in range(200):
        session.run(None, feeds)
    samples = []
    for _ in range(requests):
        started = time.perf_counter_ns()
        session.run(None, feeds)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trademl", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--model", action="append", help="only this fixture (repeatable)")
    parser.add_argument("--before", help="an older trademl binary to pack and cold-load the first model with")
    args = parser.parse_args()
    models = args.model or MODELS
    trademl = args.trademl
    work = Path(tempfile.mkdtemp(prefix="trademl-bench-onnx-"))
    # Hundreds of megabytes of packed runners and compiled cache: gone with the run, whatever happens.
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    repo = work / "repo"
    (repo / "trust").mkdir(parents=True)
    run([trademl, "keygen", "--name", "bench", "--out", str(work)])
    (repo / "trust" / "bench.pub").write_bytes((work / "bench.pub").read_bytes())

    def pack(binary, name, out, cache):
        reference = json.loads((FIXTURES / f"{name}.json").read_text())
        started = time.perf_counter()
        said = run([
            binary, "pack", "--onnx", str(FIXTURES / f"{name}.onnx"), "--name", name, "--version", "1.0.0",
            "--description", reference["description"], "--examples", str(FIXTURES / f"{name}.json"),
            "--out", str(out), "--cache-dir", str(cache),
        ])
        return (time.perf_counter() - started) * 1e3, said

    before = None
    if args.before:
        # The older binary first, on an idle machine as far as this run goes.
        name = models[0]
        before_repo = work / "before-repo"
        (before_repo / "trust").mkdir(parents=True)
        (before_repo / "trust" / "bench.pub").write_bytes((work / "bench.pub").read_bytes())
        (before_repo / name).mkdir()
        out = before_repo / name / "1.0.0.wasm"
        # A fresh pack cache: the first pack of a publisher's machine.
        wall, _ = pack(args.before, name, out, work / "before-pack-cache")
        run([args.before, "sign", str(out), "--key", str(work / "bench.key")])
        before_json = work / "before-bench.json"
        run([args.before, "bench", "--models", str(before_repo), "--loads", "1", "--requests", "200",
             "--batch-rows", "10", "--json", str(before_json), "--model", name])
        f = json.loads(before_json.read_text())["models"][0]
        before = {
            "binary": args.before,
            "model": name,
            "pack_command_ms": round(wall),
            "cold_load_p50_ms": f["cold_load"]["p50_ms"],
            "compile_p50_ms": f["compile"]["p50_ms"],
            "trademl_in_process_p50_ms": f["predict_1_row_in_process"]["p50_ms"],
        }

    # A fresh pack cache, as on a publisher's machine: it holds nothing of
    # the runner, which pack checks with Winch's code and does not cache.
    pack_cache = work / "pack-cache"
    packs = {}
    for name in models:
        (repo / name).mkdir()
        out = repo / name / "1.0.0.wasm"
        wall, said = pack(trademl, name, out, pack_cache)
        phases = dict(re.findall(r"(snapshotted|compiled|compiled by Winch|packed) in (\d+) ms", said))
        phases.setdefault("compiled", phases.get("compiled by Winch", -1))
        packs[name] = {
            "pack_command_ms": round(wall),
            "load_and_snapshot_ms": int(phases.get("snapshotted", -1)),
            "compile_ms": int(phases.get("compiled", -1)),
            "pack_ms": int(phases.get("packed", -1)),
            "size_bytes": out.stat().st_size,
            "onnx_bytes": (FIXTURES / f"{name}.onnx").stat().st_size,
        }
        run([trademl, "sign", str(out), "--key", str(work / "bench.key")])

    bench_json = work / "trademl-bench.json"
    only = [a for name in models for a in ("--model", name)]
    run([trademl, "bench", "--models", str(repo), "--loads", str(args.loads), "--requests", str(args.requests),
         "--batch-rows", "100", "--json", str(bench_json), *only])
    figures = {m["name"]: m for m in json.loads(bench_json.read_text())["models"]}

    rows = []
    for name in models:
        f = figures[name]
        ort_ms = ort_p50_ms(name, args.requests)
        rows.append({
            "model": name,
            **packs[name],
            "cold_load_compiler": f["cold_load_compiler"],
            "cold_load_compile_p50_ms": f["compile"]["p50_ms"],
            "cold_load_p50_ms": f["cold_load"]["p50_ms"],
            "cranelift_in_background_ms": f["cranelift_in_background_ms"],
            "instantiate_p50_ms": f["instantiate"]["p50_ms"],
            "trademl_winch_in_process_p50_ms": (f["predict_1_row_winch"] or {}).get("p50_ms"),
            "trademl_in_process_p50_ms": f["predict_1_row_in_process"]["p50_ms"],
            "trademl_http_p50_ms": f["predict_1_row_http"]["p50_ms"],
            "onnxruntime_p50_ms": ort_ms,
            "ratio_in_process": f["predict_1_row_in_process"]["p50_ms"] / ort_ms,
            "ratio_http": f["predict_1_row_http"]["p50_ms"] / ort_ms,
        })

    doc = {
        "tool": "scripts/bench-onnx",
        "trademl_binary": args.trademl,
        "requests_per_series": args.requests,
        "cold_loads_per_model": args.loads,
        "note": "pack checks the runner with Winch's code; cold load is verify + compile + checks on a fresh engine, after which the model serves (Winch's code for the runner); cranelift_in_background_ms is the server's compile with Cranelift + checks that then replaces it; trademl_in_process and HTTP are with Cranelift's code",
        "before": before,
        "machine": {"cores": __import__("os").cpu_count(), "python": platform.python_version()},
        "onnxruntime": ort.__version__,
        "onnxruntime_threads": 1,
        "models": rows,
    }
    out = REPO / "docs" / "bench" / "onnx.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    if before:
        print(f"before ({before['binary']}), {before['model']}: pack {before['pack_command_ms']} ms, "
              f"cold load {before['cold_load_p50_ms']:.0f} ms (compile {before['compile_p50_ms']:.0f} ms), "
              f"in process p50 {before['trademl_in_process_p50_ms']:.3f} ms")
    print("| model | pack (ms) | of which load + snapshot | cold load p50 (ms) | Cranelift in background (ms) | "
          "in process p50, Winch (ms) | in process p50 (ms) | over HTTP p50 (ms) | onnxruntime p50 (ms) | in process / ort | HTTP / ort |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in rows:
        print(f"| {r['model']} | {r['pack_command_ms']} | {r['load_and_snapshot_ms']} | {r['cold_load_p50_ms']:.0f} | "
              f"{fmt(r['cranelift_in_background_ms'], '.0f')} | {fmt(r['trademl_winch_in_process_p50_ms'], '.3f')} | "
              f"{r['trademl_in_process_p50_ms']:.3f} | {r['trademl_http_p50_ms']:.3f} | {r['onnxruntime_p50_ms']:.4f} | "
              f"{r['ratio_in_process']:.1f}x | {r['ratio_http']:.1f}x |")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
