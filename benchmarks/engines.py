"""Engine throughput: images/s and latency per backend and precision, printed as JSON.

    python benchmarks/engines.py --model spade --dataset cityscapes --batch 4 \
        --backends torch-eager torch-compile torch-cudagraphs aot ort-cpu ort-cuda ort-trt \
        tensorrt --precisions fp32 fp16 [--resolution 256 512] [--set ngf=32] [--iters 10]

Backends: ``torch-eager``, ``torch-compile`` (``torch.compile``; a C++ compiler on the CPU),
``torch-cudagraphs`` (CUDA), ``aot`` (AOTInductor ``.pt2``), ``ort-cpu``, ``ort-cuda``
(IO binding on CUDA tensors), ``ort-trt`` (onnxruntime's TensorRT EP), ``tensorrt`` (a plan
built with ``sisgen.export.tensorrt``). ``torch`` and ``onnxruntime`` are the old names of
``torch-eager`` and ``ort-cpu``. Precision ``fp16`` is autocast for torch (bfloat16 on the
CPU), an fp16 package for AOT (CUDA), ``trt_fp16_enable`` for the TensorRT EP, and an fp16
ONNX (``export_onnx(half=True)``) for ``tensorrt`` and the other onnxruntime backends.
Precision ``int8`` (``ort-cpu`` only) is an int8 ONNX (``export_onnx(int8=True)``, calibrated
on random blob maps: the speed does not depend on the calibration).

The registered paper configuration is built with random weights (speed does not depend on
them); ``--resolution`` and ``--set key=value`` override its constructor arguments. What the
machine cannot run (no GPU, no tensorrt, no onnxruntime-gpu, no fp16 ONNX export) is
reported with ``"skipped": reason`` instead of a timing; failures with ``"error"``. Build
and compile times are reported separately from the timed iterations (after ``--warmup``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sisgen.export.onnx import export_onnx, used_inputs
from sisgen.models import build_model

ALIASES = {"torch": "torch-eager", "onnxruntime": "ort-cpu"}
BACKENDS = ("torch-eager", "torch-compile", "torch-cudagraphs", "aot", "ort-cpu", "ort-cuda",
            "ort-trt", "tensorrt")


class Skip(Exception):
    """This machine cannot run the backend/precision; the message says why."""


def _time(fn: Callable[[], object], iters: int, warmup: int, sync=None) -> list[float]:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t)
    return out


def _ort_provider(name: str) -> None:
    import onnxruntime as ort

    if name not in ort.get_available_providers():
        raise Skip(f"onnxruntime has no {name} (install onnxruntime-gpu)")


class Runner:
    """Builds each backend for one model and batch, caching exported files in ``tmp``."""

    def __init__(self, model, batch: int, tmp: Path, threads: int):
        self.model, self.batch, self.tmp, self.threads = model, batch, Path(tmp), threads
        self.cuda = torch.cuda.is_available()
        example = model.example_inputs(batch_size=batch)
        self.names, self.inputs = used_inputs(model, example)
        self.example = example
        self._onnx: dict[str, Path] = {}

    def onnx(self, precision: str, info: dict) -> Path:
        if precision not in self._onnx:
            opts = {}
            option = {"fp16": "half", "int8": "int8"}.get(precision)
            if option:
                if option not in inspect.signature(export_onnx).parameters:
                    raise Skip(f"export_onnx has no {precision} option in this version")
                opts[option] = True
            t0 = time.perf_counter()
            path, _ = export_onnx(self.model, self.tmp / f"m_{precision}.onnx", check=False,
                                  **opts)
            info["onnx_export_s"] = round(time.perf_counter() - t0, 1)
            self._onnx[precision] = path
        return self._onnx[precision]

    def on(self, device: str) -> list:
        return [None if t is None else t.to(device) for t in self.example]

    def build(self, backend: str, precision: str, info: dict
              ) -> tuple[Callable, Callable | None]:
        """``(run, sync)`` for one backend/precision; raises :class:`Skip` where impossible."""
        from sisgen.engines.torch_engine import TorchEngine

        half = precision == "fp16"
        if precision == "int8" and backend != "ort-cpu":
            raise Skip("int8 is an ONNX export for onnxruntime on the CPU (ort-cpu)")
        cuda_sync = torch.cuda.synchronize if self.cuda else None
        dev = "cuda" if self.cuda else "cpu"
        if backend.startswith("torch-"):
            mode = backend.split("-", 1)[1]
            if mode == "cudagraphs" and not self.cuda:
                raise Skip("CUDA graphs need a CUDA GPU")
            if mode == "compile" and dev == "cpu" and not (shutil.which("g++")
                                                            or shutil.which("cc")):
                raise Skip("torch.compile on the CPU needs a C++ compiler")
            eng = TorchEngine(self.model, dev, mode=mode, half=half)
            inputs = self.on(dev)
            info.update(device=dev, autocast=None if not half else
                        ("float16" if self.cuda else "bfloat16"))
            t0 = time.perf_counter()
            eng(*inputs)  # compile / capture outside the timing
            info["first_call_s"] = round(time.perf_counter() - t0, 1)
            return (lambda: eng(*inputs)), cuda_sync
        if backend == "aot":
            from sisgen.engines.aot_engine import AOTEngine
            from sisgen.export.aot import export_aot

            if half and not self.cuda:
                raise Skip("fp16 AOT packages need CUDA")
            t0 = time.perf_counter()
            path = export_aot(self.model, self.tmp / f"m{int(half)}.pt2", batch=self.batch,
                              device=dev, half=half)
            info["compile_s"] = round(time.perf_counter() - t0, 1)
            eng, inputs = AOTEngine(path), self.on(dev)
            info["device"] = dev
            return (lambda: eng(*inputs)), cuda_sync
        if backend.startswith("ort-"):
            from sisgen.engines.onnx_engine import OnnxEngine, tensorrt_ep_options

            kind = backend.split("-", 1)[1]
            if kind == "cpu":
                _ort_provider("CPUExecutionProvider")
                eng = OnnxEngine(self.onnx(precision, info), providers=["cpu"],
                                 threads=self.threads)
                feeds = dict(zip(self.names, self.inputs, strict=True))
                info["providers"] = eng.providers
                return (lambda: eng.run(feeds)), None
            if not self.cuda:
                raise Skip(f"{backend} needs a CUDA GPU")
            if kind == "cuda":
                _ort_provider("CUDAExecutionProvider")
                eng = OnnxEngine(self.onnx(precision, info), providers=["cuda"],
                                 io_binding=True)
            else:
                _ort_provider("TensorrtExecutionProvider")
                trt = tensorrt_ep_options(fp16=half, cache_dir=self.tmp / "ort-trt")
                eng = OnnxEngine(self.onnx("fp32", info), providers=["tensorrt", "cuda"],
                                 io_binding=True, trt_options=trt)
            inputs = self.on("cuda")
            info["providers"] = eng.providers
            t0 = time.perf_counter()
            eng(*inputs)  # the TensorRT EP builds its engine on the first run
            info["first_call_s"] = round(time.perf_counter() - t0, 1)
            return (lambda: eng(*inputs)), cuda_sync
        if backend == "tensorrt":
            if not self.cuda:
                raise Skip("TensorRT needs a CUDA GPU")
            try:
                import tensorrt  # noqa: F401
            except ImportError:
                raise Skip("the tensorrt package is not installed") from None
            from sisgen.engines.tensorrt_engine import TensorRTEngine
            from sisgen.export.tensorrt import build_engine

            onnx_path = self.onnx(half, info)
            t0 = time.perf_counter()
            plan = build_engine(onnx_path, self.tmp / f"m{int(half)}.engine", half=half,
                                batch=self.batch, timing_cache=self.tmp / "timing.cache")
            info["build_s"] = round(time.perf_counter() - t0, 1)
            eng, inputs = TensorRTEngine(plan), self.on("cuda")
            return (lambda: eng(*inputs)), cuda_sync
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spade")
    ap.add_argument("--dataset", default="cityscapes")
    ap.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="constructor overrides (JSON values), e.g. ngf=16")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=["torch-eager", "ort-cpu"])
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "fp16", "int8"])
    ap.add_argument("--half", action="store_true", help="same as --precisions fp16")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        overrides[key] = value
    if args.resolution:
        overrides.update(height=args.resolution[0], width=args.resolution[1])
    model = build_model(args.model, dataset=args.dataset, **overrides).eval()
    precisions = ["fp16"] if args.half else args.precisions
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(model, args.batch, Path(tmp), args.threads)
        for name in args.backends:
            backend = ALIASES.get(name, name)
            for precision in precisions:
                row: dict = {"backend": backend, "precision": precision, "batch": args.batch}
                try:
                    run, sync = runner.build(backend, precision, row)
                    times = _time(run, args.iters, args.warmup, sync)
                    med = statistics.median(times)
                    row.update(latency_ms_median=round(1000 * med, 2),
                               latency_ms_min=round(1000 * min(times), 2),
                               images_per_s=round(args.batch / med, 3))
                except Skip as e:
                    row["skipped"] = str(e)
                except Exception as e:  # report and go on with the other backends
                    row["error"] = repr(e)[:300]
                results.append(row)
                print(json.dumps(row), flush=True)
    cuda = torch.cuda.is_available()
    print(json.dumps({
        "model": args.model, "dataset": args.dataset, "resolution": list(model.resolution),
        "overrides": overrides,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "results": results,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "cuda": torch.cuda.get_device_name() if cuda
                    else None, "platform": platform.platform()},
    }, indent=1))


if __name__ == "__main__":
    main()
