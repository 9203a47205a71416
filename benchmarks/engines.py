"""Engine throughput: images/s and latency per backend and precision, printed as JSON.

    python benchmarks/engines.py --model spade --dataset cityscapes --batch 1 \
        --backends torch onnxruntime [--iters 5] [--model-path folder_or_onnx]

Backends: ``torch`` (eager), ``torch-compile`` (``torch.compile``; needs a C++ compiler on
CPU), ``onnxruntime`` (CPU, or CUDA when onnxruntime-gpu is installed). ``--half`` runs the
torch backends in fp16 autocast on CUDA. Without ``--model-path`` the registered paper
configuration is built with random weights (speed does not depend on the weights) and
exported to ONNX in a temporary folder for the onnxruntime backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from sisgen.engines import load_generator
from sisgen.export.onnx import used_inputs
from sisgen.models import build_model


def _time(fn, iters: int, warmup: int, sync=None) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spade")
    ap.add_argument("--dataset", default="cityscapes")
    ap.add_argument("--model-path", help="a saved model folder or .onnx file instead")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    ap.add_argument("--half", action="store_true", help="fp16 autocast (CUDA torch backends)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = build_model(args.model, dataset=args.dataset).eval()
    example = model.example_inputs(batch_size=args.batch)
    names, inputs = used_inputs(model, example)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            row = {"backend": backend, "batch": args.batch, "half": args.half}
            try:
                if backend in ("torch", "torch-compile"):
                    form = model.export_form().to(device)
                    if backend == "torch-compile":
                        form = torch.compile(form)
                    dev_inputs = [t.to(device) for t in inputs]
                    kwargs = dict(zip(names, dev_inputs, strict=True))

                    def run(form=form, kwargs=kwargs):
                        with torch.autocast(device.type, dtype=torch.float16,
                                            enabled=args.half and cuda):
                            return form(**kwargs)

                    times = _time(run, args.iters, args.warmup,
                                  torch.cuda.synchronize if cuda else None)
                    row["device"] = str(device)
                elif backend == "onnxruntime":
                    from sisgen.export import export_onnx

                    path = args.model_path
                    if path is None or not str(path).endswith(".onnx"):
                        t0 = time.perf_counter()
                        path, _ = export_onnx(model, os.path.join(tmp, "m.onnx"), check=False)
                        row["export_s"] = round(time.perf_counter() - t0, 1)
                    gen = load_generator(path, threads=args.threads)
                    feeds = dict(zip(names, inputs, strict=True))
                    times = _time(lambda gen=gen, feeds=feeds: gen.engine.run(feeds),
                                  args.iters, args.warmup)
                    row["providers"] = gen.engine.session.get_providers()
                else:
                    raise ValueError(f"unknown backend {backend!r}")
                med = statistics.median(times)
                row.update(latency_ms_median=round(1000 * med, 1),
                           latency_ms_min=round(1000 * min(times), 1),
                           images_per_s=round(args.batch / med, 3))
            except Exception as e:  # report and go on with the other backends
                row["error"] = repr(e)[:300]
            results.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({
        "model": args.model, "dataset": args.dataset, "resolution": list(model.resolution),
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "results": results,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "cuda": torch.cuda.get_device_name() if cuda
                    else None, "platform": platform.platform()},
    }, indent=1))


if __name__ == "__main__":
    main()
