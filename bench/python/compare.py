"""The same model done by what a user would pick instead of trademl.

Given a spec written by trademl-bench (the model's parameters, the exact V2 requests the bench
sends trademl, and trademl's answers to them), this builds the equivalent model and checks that
it answers as trademl does, times it in process, and writes an MLServer repository serving it,
for trademl-bench to start and drive over HTTP. It prints one JSON object. Two kinds:

- a scikit-learn model rebuilt from trademl's weights (`log1p-standardise-kmeans`): exported to
  ONNX (skl2onnx), run by onnxruntime and by scikit-learn, served by MLServer's scikit-learn
  runtime;
- an ONNX graph trademl packed (`onnx-graph`): the same file, run by onnxruntime, served by
  MLServer through a custom runtime of a few lines that runs it with onnxruntime (MLServer
  ships no ONNX runtime of its own).

    python compare.py SPEC.json OUT_DIR --requests 2000 --http-port P --grpc-port G --metrics-port M
"""

import argparse
import json
import os
import sys
import time

import joblib
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def columns_of(request, names):
    """The request's named FP64 inputs, as the columns of a DataFrame."""
    by_name = {t["name"]: t["data"] for t in request["inputs"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        sys.exit(f"the request has no input {missing[0]!r}")
    return pd.DataFrame({n: np.asarray(by_name[n], dtype=np.float64) for n in names})


def log1p_kmeans(spec):
    """ln(1 + x), standardised with the training means and deviations, nearest centroid.

    Returns the scikit-learn pipeline and its ONNX export (skl2onnx has no converter for a
    FunctionTransformer, so ln(1 + x) is prepended to the exported scaler and k-means as two
    ONNX nodes, Add and Log)."""
    p = spec["params"]
    names = spec["columns"]
    means = np.asarray(p["means"], dtype=np.float64)
    stds = np.asarray(p["stds"], dtype=np.float64)
    centroids = np.asarray(p["centroids"], dtype=np.float64)
    k = len(centroids)
    # Fit on the centroids mapped back to raw figures, then set the fitted
    # attributes to trademl's weights exactly.
    raw = pd.DataFrame(np.expm1(centroids * stds + means), columns=names)
    pipe = Pipeline(
        [
            ("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
            ("kmeans", KMeans(n_clusters=k, init=centroids, n_init=1, max_iter=1)),
        ]
    )
    pipe.fit(raw)
    scaler = pipe.named_steps["scale"]
    scaler.mean_ = means.copy()
    scaler.scale_ = stds.copy()
    scaler.var_ = stds**2
    pipe.named_steps["kmeans"].cluster_centers_ = centroids.copy()

    tail = Pipeline([("scale", scaler), ("kmeans", pipe.named_steps["kmeans"])])
    exported = convert_sklearn(
        tail, initial_types=[("scaled_input", DoubleTensorType([None, len(names)]))]
    )
    graph = exported.graph
    graph.input.pop()
    graph.input.append(helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, len(names)]))
    graph.initializer.append(helper.make_tensor("one", TensorProto.DOUBLE, [], [1.0]))
    graph.node.insert(0, helper.make_node("Log", ["features_plus_one"], ["scaled_input"]))
    graph.node.insert(0, helper.make_node("Add", ["features", "one"], ["features_plus_one"]))
    onnx.checker.check_model(exported)
    return pipe, exported


def onnx_graph(spec):
    """The ONNX graph trademl packed, as it is (no scikit-learn model)."""
    graph = onnx.load(spec["params"]["path"])
    onnx.checker.check_model(graph)
    return None, graph


BUILDERS = {"log1p-standardise-kmeans": log1p_kmeans, "onnx-graph": onnx_graph}

# MLServer's runtime for an ONNX graph: onnxruntime on one thread, every output of the graph.
ONNX_RUNTIME = """import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        uri = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(n, r) for n, r in zip(self._outputs, results)],
        )
"""


def tensors_of(request):
    """The request's FP64 tensors as arrays of their shapes, by name."""
    return {
        t["name"]: np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])
        for t in request["inputs"]
    }


def agrees(got, expected, tolerance):
    """Whether an answer is trademl's: equal labels, or numbers within `tolerance` of
    max(|trademl's|, 1) (float sums in another order)."""
    if tolerance is None:
        return np.array_equal(np.asarray(got, dtype=np.int64).ravel(), expected.astype(np.int64))
    got = np.asarray(got, dtype=np.float64).ravel()
    return got.shape == expected.shape and bool(
        np.all(np.abs(got - expected) <= tolerance * np.maximum(np.abs(expected), 1.0))
    )


def summary(samples):
    s = np.sort(np.asarray(samples)) * 1e3
    at = lambda q: float(s[int(round((len(s) - 1) * q))])
    return {"n": len(s), "min_ms": float(s[0]), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": float(s[-1])}


def timed(f, n):
    for _ in range(min(n, 50)):
        f()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return summary(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    args = ap.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    name, names = spec["model"], spec["columns"]
    tolerance = spec.get("tolerance")
    if spec["kind"] not in BUILDERS:
        sys.exit(f"{name}: no equivalent model of kind {spec['kind']!r}")
    started = time.perf_counter()
    pipe, exported = BUILDERS[spec["kind"]](spec)
    build_s = time.perf_counter() - started

    # A graph trademl packed is run and served as its file's own bytes.
    onnx_bytes = (
        exported.SerializeToString() if pipe is not None
        else open(spec["params"]["path"], "rb").read()
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session_loads = []
    for _ in range(5):
        t = time.perf_counter()
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        session_loads.append(time.perf_counter() - t)
    # The k-means export names its output "label"; a graph trademl packed, trademl's output.
    label = spec["output"] if pipe is None else session.get_outputs()[0].name

    result = {
        "model": name,
        "equivalent": spec["kind"],
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": __import__("sklearn").__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "skl2onnx": __import__("skl2onnx").__version__,
            "mlserver": __import__("mlserver").__version__,
        },
        "onnx_bytes": len(onnx_bytes),
        "build_and_export_s": build_s,
        "onnxruntime_session_create": summary(session_loads),
        "onnxruntime_threads": 1,
        "in_process": {},
    }
    for rows, request in spec["requests"].items():
        expected = np.asarray(spec["expected"][rows], dtype=np.float64).ravel()
        answers = []
        # Timed from the request's tensors (or columns), as trademl's in-process figure starts
        # from its tensors.
        if pipe is None:
            tensors = tensors_of(request)
            run = lambda: session.run([label], tensors)
        else:
            frame = columns_of(request, names)
            columns = [np.asarray(frame[n].to_numpy()) for n in names]
            run = lambda: session.run([label], {"features": np.column_stack(columns)})
            answers.append(("scikit-learn", pipe.predict(frame)))
        answers.append(("onnxruntime", run()[0]))
        for who, got in answers:
            if not agrees(got, expected, tolerance):
                got = list(np.asarray(got).ravel())
                sys.exit(f"{name}: {who} answers {got[:10]}, trademl {list(expected)[:10]}")
        n = args.requests if rows == "1" else max(args.requests // 4, 10)
        result["in_process"][rows] = {"onnxruntime": timed(run, n)}
        if pipe is not None:
            result["in_process"][rows]["scikit-learn"] = timed(lambda: pipe.predict(frame), max(n // 4, 10))

    repo = os.path.join(args.out, "mlserver")
    folder = os.path.join(repo, name)
    os.makedirs(folder, exist_ok=True)
    version = spec.get("version", "1")
    if pipe is None:
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(onnx_bytes)
        with open(os.path.join(folder, "onnx_model.py"), "w") as f:
            f.write(ONNX_RUNTIME)
        settings = {"name": name, "implementation": "onnx_model.OnnxModel",
                    "parameters": {"uri": "./model.onnx", "version": version}}
    else:
        joblib.dump(pipe, os.path.join(folder, "model.joblib"))
        settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib", "version": version}}
    with open(os.path.join(folder, "model-settings.json"), "w") as f:
        json.dump(settings, f)
    with open(os.path.join(repo, "settings.json"), "w") as f:
        # Request logging off, as in production; workers left at MLServer's default.
        json.dump(
            {"debug": False, "host": "127.0.0.1", "http_port": args.http_port,
             "grpc_port": args.grpc_port, "metrics_port": args.metrics_port},
            f,
        )
    with open(os.path.join(args.out, f"{name}.onnx"), "wb") as f:
        f.write(onnx_bytes)
    result["mlserver_repository"] = repo
    print(json.dumps(result))


if __name__ == "__main__":
    main()
