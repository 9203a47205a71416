"""Scene-editor latency: edit -> new image, over real HTTP, printed as JSON.

    python benchmarks/editor_latency.py [--model runs/quickstart/model.onnx] [--edits 40]
        [--backends onnx torch] [--threads 0]

Starts the editor app in this process (uvicorn on 127.0.0.1, a free port) on ToyCity and
applies a fixed, seeded series of edits the way the page does: one ``POST /api/edit`` (the
step; the answer holds the new label map), then ``GET /api/image`` (the regenerated image).
Reported per backend: the edit request, the image request and their sum (edit -> image),
median / p90 / max in milliseconds, plus the server's own split of the image request into
edits (the one sample path) and engine. The page waits ``RENDER_DELAY_MS`` (120 ms) after
the last edit before it asks for the image (debouncing a brush stroke); that wait comes on
top of the numbers here.

Without ``--model`` it builds the quickstart's model -- the tiny ToyCity SPADE (ngf 16,
64x128, z 64) -- with random weights (a trained one costs the same) and, for ``onnx``,
exports it as the quickstart does.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

import sisgen
from sisgen.editor.app import create_app
from sisgen.editor.server import bind
from sisgen.editor.session import EditorSession
from sisgen.models import build_model

QUICKSTART = dict(ngf=16, spade_hidden=16, z_dim=64, height=64, width=128)


def request(base: str, method: str, path: str, body: dict | None = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def edits(rng: np.random.Generator, shape: tuple[int, int], n: int, classes: list[str]):
    """A fixed mix of the editor's tools at random places."""
    h, w = shape
    for i in range(n):
        cls = classes[int(rng.integers(len(classes)))]
        y, x = int(rng.integers(h)), int(rng.integers(w))
        kind = i % 4
        if kind == 0:
            pts = [[int(np.clip(y + dy, 0, h - 1)), int(np.clip(x + dx, 0, w - 1))]
                   for dy, dx in rng.integers(-12, 13, size=(8, 2))]
            yield {"op": "stroke", "class": cls, "points": pts, "radius": 1.5}
        elif kind == 1:
            y1, x1 = min(h, y + 1 + int(rng.integers(12))), min(w, x + 1 + int(rng.integers(20)))
            yield {"op": "fill", "class": cls, "box": [y, x, y1, x1]}
        elif kind == 2:
            yield {"op": "flood_fill", "class": cls, "at": [y, x]}
        else:
            yield {"op": "fill", "class": "car", "polygon": [[y, x], [y, min(w - 1, x + 9)],
                                                             [min(h - 1, y + 6), x]]}


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 1),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1)}


def measure(model: Path, n: int, seed: int, threads: int) -> dict:
    import uvicorn

    gen = sisgen.load(model, threads=threads) if model.suffix == ".onnx" else sisgen.load(model)
    source = sisgen.sources.open("toycity", size=tuple(gen.resolution), length=20)
    with tempfile.TemporaryDirectory() as out:
        session = EditorSession(gen, source, out, writers=("folder",), bank_maps=20)
        server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning"))
        sock = bind("127.0.0.1", 0)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            request(base, "GET", "/api/image")  # warm-up: first engine call
            names = [c.name for c in session.vocab.classes]
            rows = {"edit_ms": [], "image_ms": [], "edit_to_image_ms": [], "server_edits_ms": [],
                    "server_engine_ms": []}
            for step in edits(np.random.default_rng(seed), tuple(gen.resolution), n, names):
                t0 = time.perf_counter()
                request(base, "POST", "/api/edit", step)
                t1 = time.perf_counter()
                with urllib.request.urlopen(base + "/api/image", timeout=60) as r:
                    r.read()
                    headers = r.headers
                t2 = time.perf_counter()
                rows["edit_ms"].append(1e3 * (t1 - t0))
                rows["image_ms"].append(1e3 * (t2 - t1))
                rows["edit_to_image_ms"].append(1e3 * (t2 - t0))
                rows["server_edits_ms"].append(float(headers["X-Edit-Ms"]))
                rows["server_engine_ms"].append(float(headers["X-Engine-Ms"]))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        return {"backend": gen.backend, "model": gen.model_name,
                "resolution": list(gen.resolution), "edits": n,
                **{k: stats(v) for k, v in rows.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder or .onnx (default: the quickstart's SPADE, "
                   "random weights)")
    p.add_argument("--backends", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    p.add_argument("--edits", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            models = [Path(args.model)]
        else:
            folder = Path(tmp) / "spade"
            model = build_model("spade", dataset="toycity", **QUICKSTART)
            model.save(folder)
            models = []
            for backend in args.backends:
                if backend == "onnx":
                    from sisgen.export import export_onnx

                    models.append(export_onnx(model, Path(tmp) / "model.onnx")[0])
                else:
                    models.append(folder)
        for model in models:
            results.append(measure(Path(model), args.edits, args.seed, args.threads))
    print(json.dumps({"benchmark": "editor_latency", "machine": platform.machine(),
                      "cpus": torch.get_num_threads(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
