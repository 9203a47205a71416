"""One prepared GPU check: paper SPADE Cityscapes speed, precision and end to end, as JSON.

    python benchmarks/gpu_check.py [--out result.json] [--budget 450]
    python benchmarks/gpu_check.py --dry-run        # the same steps, tiny, on the CPU

For a CUDA machine with torch and neither TensorRT nor onnxruntime-gpu; it runs in at most
``--budget`` seconds (default 450, under 8 minutes) and skips what no longer fits.

1. The paper SPADE Cityscapes generator (``build_model("spade", dataset="cityscapes")``,
   256x512, random weights: speed does not depend on them); its FLOPs per image are counted
   once (``torch.utils.flop_counter``; the paper configuration is 281 GMAC = 0.562 TFLOP).
2. Engine configurations, each timed two ways: the engine alone on inputs already on the
   GPU (``engine_*``), and the whole device path of ``Generator.run`` (compact batches
   through pinned buffers on a dedicated stream, widening on the GPU, uint8 back; the next
   batch submitted before the previous result is read: ``run_*``):
   eager fp32 batch 1 with TF32 off (the baseline and the parity reference) and on; fp16 and
   bf16 autocast with channels_last at batch 8/32/64; CUDA graphs. Parity of each against
   the fp32 reference: max / mean absolute difference of the uint8 images of 8 samples.
3. End to end: ``sisgen.generate.generate`` with the ``cityscapes`` and ``coco`` writers into
   ``/dev/shm`` (the temp folder when it has under 8 GiB free) from synthetic Cityscapes
   label maps (random class blobs, instances for things; recipe hflip + swap car/truck),
   4 samples per map, with the fastest configuration
   whose parity is within 8 levels; then the same with an instant engine (host work only).
   Each runs in a child process with a hard time limit; a run cut short reports what its
   manifest recorded.

Images/s and achieved TFLOP/s (images/s x FLOPs per image) are reported for everything.
Without CUDA (and without ``--dry-run``) it prints ``{"cuda": false, ...}`` at once.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
try:
    import sisgen  # noqa: F401

    FROM_CHECKOUT = False
except ImportError:  # a bare checkout on the GPU machine: run from the repository
    sys.path.insert(0, str(REPO))
    FROM_CHECKOUT = True
RECIPE = "edits:\n  - {op: hflip, p: 0.5}\n  - {op: swap, a: car, b: truck, p: 0.5}\n"
PARITY_SAMPLES = 8
PAPER_TFLOP = 0.562  # 281 GMAC per 256x512 image


# ------------------------------------------------------------------ synthetic label maps
def blob_map(index: int, size: tuple[int, int], ids: list[int], things: set[int]):
    """A Cityscapes-vocabulary label map of random class blobs (instances for things)."""
    from sisgen.labelmap import LabelMap

    h, w = size
    rng = np.random.default_rng(index)
    sh, sw = max(1, h // 4), max(1, w // 4)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    n = 24
    centres = rng.uniform(size=(n, 2)).astype(np.float32) * [sh, sw]
    cell = ((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
            ).argmin(-1)
    classes = rng.choice(ids, n)
    sem = classes[cell].astype(np.uint8)
    inst = np.where(np.isin(classes, list(things)), classes * 1000 + np.arange(n), 0)[cell]
    sem = sem.repeat(4, 0).repeat(4, 1)[:h, :w]
    inst = inst.astype(np.int32).repeat(4, 0).repeat(4, 1)[:h, :w]
    pad = ((0, h - sem.shape[0]), (0, w - sem.shape[1]))
    return LabelMap(np.pad(sem, pad, mode="edge"), np.pad(inst, pad, mode="edge"),
                    {"id": f"blob_{index:06d}", "source": "blobs"})


def blob_source(size: tuple[int, int], length: int):
    """A :class:`sisgen.sources.Source` of :func:`blob_map` maps (picklable, top level)."""
    from sisgen.vocab import get_vocabulary

    return BlobSource(get_vocabulary("cityscapes"), size, length)


def _source_base():
    from sisgen.sources import Source

    return Source


class BlobSource(_source_base()):
    """Synthetic Cityscapes label maps (the GPU machine has no dataset)."""

    kind = "blobs"

    def __init__(self, vocabulary, size: tuple[int, int], length: int):
        self.vocabulary, self.size, self.length = vocabulary, tuple(size), int(length)
        self._ids = [i for i in vocabulary.ids if i >= 4]  # drop void / out-of-roi classes
        self._things = set(vocabulary.thing_ids)

    def keys(self) -> list[str]:  # noqa: D102
        return [f"blob_{i:06d}" for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def load(self, index: int):  # noqa: D102
        return blob_map(index, self.size, self._ids, self._things)


# --------------------------------------------------------------------------- engines
def configs(cuda: bool) -> list[dict]:
    """The engine configurations, in order of priority."""
    if not cuda:  # the dry run: the same code paths, tiny
        return [dict(name="fp32_b1_tf32off", batch=1, tf32=False, baseline=True),
                dict(name="bf16_cl_b2", batch=2, half="bf16", channels_last=True),
                dict(name="fp16_cl_graphs_b2", batch=2, half="fp16", channels_last=True,
                     mode="cudagraphs")]
    out = [dict(name="fp32_b1_tf32off", batch=1, tf32=False, baseline=True),
           dict(name="fp32_b1_tf32on", batch=1, tf32=True)]
    for half in ("fp16", "bf16"):
        out += [dict(name=f"{half}_cl_b{b}", batch=b, half=half, channels_last=True)
                for b in (8, 32, 64)]
    out += [dict(name="fp16_cl_graphs_b32", batch=32, half="fp16", channels_last=True,
                 mode="cudagraphs"),
            dict(name="fp16_cl_graphs_b64", batch=64, half="fp16", channels_last=True,
                 mode="cudagraphs"),
            dict(name="bf16_cl_graphs_b64", batch=64, half="bf16", channels_last=True,
                 mode="cudagraphs")]
    return out


def _timed(step, sync, window: float, images: int) -> tuple[float, int]:
    """Images/s of ``step`` repeated for about ``window`` seconds (at least once)."""
    sync()
    t0, n = time.perf_counter(), 0
    while True:
        step()
        n += 1
        if time.perf_counter() - t0 >= window:
            break
    sync()
    return images * n / (time.perf_counter() - t0), n


def run_config(cfg: dict, model, maps: list, device: str, window: float, flop: float,
               reference: np.ndarray | None) -> tuple[dict, np.ndarray]:
    """Time one configuration; returns its record and its parity images."""
    import torch

    from sisgen.engines import Generator
    from sisgen.engines.torch_engine import TorchEngine

    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = cfg.get("tf32", True)
        torch.backends.cudnn.allow_tf32 = cfg.get("tf32", True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    b = cfg["batch"]
    t0 = time.perf_counter()
    engine = TorchEngine(model, device, mode=cfg.get("mode", "eager"),
                         half=cfg.get("half", False),
                         channels_last=cfg.get("channels_last", False))
    gen = Generator.from_model(engine, model, model_hash="")
    seeds = list(range(b))
    batch = gen.input_spec.build(maps[:b], seeds)
    # the first runs: cuDNN autotuning, CUDA graph capture; the parity images
    parity = gen.run(batch)[:PARITY_SAMPLES]
    for start in range(b, PARITY_SAMPLES, b):
        part = list(range(start, min(start + b, PARITY_SAMPLES)))
        parity = np.concatenate([parity, gen.run(gen.input_spec.build([maps[i] for i in part],
                                                                      part))])
    setup = time.perf_counter() - t0
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    inputs = [None if t is None else t.to(device) for t in gen.prepare(maps[:b], seeds)]
    with torch.inference_mode():
        engine_rate, iters = _timed(lambda: engine(*inputs), sync, window, b)
    state = {"pending": None}

    def pipelined():  # the next batch is enqueued before the last result is read
        nxt = gen.submit(batch)
        if state["pending"] is not None:
            state["pending"].result()
        state["pending"] = nxt

    run_rate, _ = _timed(pipelined, lambda: state["pending"] and state["pending"].result(),
                         window, b)
    rec = {"name": cfg["name"], "batch": b, "mode": cfg.get("mode", "eager"),
           "precision": cfg.get("half") or "fp32", "channels_last": cfg.get("channels_last",
                                                                            False),
           "tf32": cfg.get("tf32", True) if cuda else None, "setup_s": round(setup, 2),
           "engine_images_per_s": round(engine_rate, 1), "engine_iters": iters,
           "engine_ms_per_batch": round(1000 * b / engine_rate, 2),
           "engine_tflops": round(engine_rate * flop / 1e12, 3),
           "run_images_per_s": round(run_rate, 1),
           "run_tflops": round(run_rate * flop / 1e12, 3)}
    if cuda:
        rec["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if reference is not None:
        diff = np.abs(parity.astype(np.int16) - reference.astype(np.int16))
        rec.update(max_abs_uint8=int(diff.max()), mean_abs_uint8=round(float(diff.mean()), 4))
    return rec, parity


# ----------------------------------------------------------------------- end to end
class NullEngine:
    """An instant engine returning one textured image (JPEG costs stay realistic)."""

    input_names = ("labels", "edges", "noise")

    def __init__(self, size: tuple[int, int]):
        import cv2

        h, w = size
        rng = np.random.default_rng(0)
        self.photo = cv2.resize(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3),
                                             dtype=np.uint8), (w, h),
                                interpolation=cv2.INTER_CUBIC)

    def __call__(self, labels, edges=None, noise=None, **named):  # noqa: D102
        return np.broadcast_to(self.photo, (labels.shape[0], *self.photo.shape))


def e2e_child(spec: dict) -> None:
    """Run one ``generate`` (in a child process); prints its report as JSON."""
    import torch

    import sisgen
    from sisgen.engines import Generator
    from sisgen.generate import generate

    size = tuple(spec["size"])
    if spec["engine"] == "null":
        from sisgen.vocab import get_vocabulary

        # no instance edges: a GPU run computes them on the device, not on the host
        gen = Generator(NullEngine(size), get_vocabulary("cityscapes"), size, {},
                        model_name="null", uses_edges=False, backend="null")
    else:
        gen = sisgen.load(spec["model"], device=spec["device"], mode=spec["mode"],
                          half=spec["half"], channels_last=spec["channels_last"])
        warm = gen.input_spec.build([blob_map(i, size, list(range(7, 34)), set())
                                     for i in range(spec["batch"])], list(range(spec["batch"])))
        gen.run(warm)  # cuDNN autotuning / graph capture before the timed run
    src = BlobSource(gen.vocabulary, size, spec["maps"])
    wanted = dict(writers=("cityscapes", "coco"), recipe=RECIPE, seed=0,
                  samples_per_map=spec["samples_per_map"], batch_size=spec["batch"],
                  limit=spec["maps"], workers=spec["workers"],
                  write_workers=spec["write_workers"], write_threads=spec["write_workers"],
                  progress=False)
    accepted = inspect.signature(generate).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    report = generate(gen, src, spec["out"], **kwargs)
    print(json.dumps({"report": report.to_dict(), "process_wall_s":
                      round(time.perf_counter() - t0, 2), "kwargs": sorted(kwargs)}))


def end_to_end(spec: dict, timeout: float, flop: float | None) -> dict:
    """Run :func:`e2e_child` in a child process with a hard limit; summarize it."""
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--e2e-child", json.dumps(spec)]
    env = dict(os.environ)
    if FROM_CHECKOUT:  # the child imports sisgen the way this process did
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    rec: dict = {"engine": spec["engine"], "maps": spec["maps"],
                 "samples_per_map": spec["samples_per_map"], "batch": spec["batch"],
                 "workers": spec["workers"], "write_workers": spec["write_workers"],
                 "writers": "cityscapes,coco", "out": str(out)}
    try:
        stdout, stderr = proc.communicate(timeout=max(5.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        lines = sum(1 for f in out.glob("manifest*.jsonl") for _ in f.open())
        rec.update(partial=True, wall_s=round(wall, 1), manifest_lines=lines,
                   images_per_s_incl_startup=round(max(0, lines - 1) / wall, 1))
    else:
        last = (stdout.strip().splitlines() or [""])[-1]
        try:
            rec.update(json.loads(last))
            ips = rec["report"]["images_per_s"]
            rec["images_per_s"] = ips
            if flop:
                rec["tflops"] = round(ips * flop / 1e12, 3)
        except (json.JSONDecodeError, KeyError):
            rec.update(error=f"child exited {proc.returncode}", stderr=stderr[-3000:])
    shutil.rmtree(out, ignore_errors=True)
    return rec


# ------------------------------------------------------------------------------ main
def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if env["cuda"]:
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, capability=f"sm_{p.major}{p.minor}",
                   memory_gb=round(p.total_memory / 2**30, 1),
                   cuda_version=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    for mod in ("tensorrt", "onnxruntime"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    return env


def count_flops(model, device: str) -> float:
    """FLOPs of one image (convolutions and matmuls, 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    form = model.export_form().to(device)
    inputs = [None if t is None else t.to(device) for t in model.example_inputs(batch_size=1)]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        form(*inputs)
    return float(counter.get_total_flops())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny model on the CPU")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for everything")
    ap.add_argument("--window", type=float, default=None, help="seconds per timing")
    ap.add_argument("--e2e-seconds", type=float, default=60.0, help="target end-to-end run")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--write-workers", type=int, default=None)
    ap.add_argument("--e2e-only", metavar="CONFIG",
                    help="skip the engine sweep: only the end-to-end runs, with this "
                         "configuration (a name from the sweep, e.g. bf16_cl_graphs_b64)")
    ap.add_argument("--e2e-engines", default="model,null",
                    help="which end-to-end runs: model, null or both")
    ap.add_argument("--e2e-rate", type=float, default=330.0,
                    help="with --e2e-only: the engine's images/s, to size the model run")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--e2e-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.e2e_child:
        e2e_child(json.loads(args.e2e_child))
        return 0
    t0 = time.monotonic()
    deadline = t0 + args.budget
    import torch

    cuda = torch.cuda.is_available()
    result: dict = {"script": "gpu_check", "cuda": cuda, "dry_run": args.dry_run,
                    "budget_s": args.budget}
    if not cuda and not args.dry_run:
        result["skipped"] = "no CUDA device (use --dry-run to exercise the steps on the CPU)"
        return _emit(result, args.out)
    from sisgen.models import build_model

    device = "cuda" if cuda else "cpu"
    window = args.window if args.window is not None else (2.0 if cuda else 0.0)
    result["env"] = environment()
    torch.manual_seed(0)
    small = {} if cuda else dict(ngf=4, spade_hidden=8, height=64, width=128)
    model = build_model("spade", dataset="cityscapes", **small).eval()
    size = tuple(model.resolution)
    flop = count_flops(model, device)
    result["model"] = {"name": "spade", "dataset": "cityscapes", "resolution": list(size),
                       "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                       "gflop_per_image": round(flop / 1e9, 2),
                       "gmac_per_image": round(flop / 2e9, 2), "paper_tflop": PAPER_TFLOP}
    src = blob_source(size, 64)
    maps = [src.load(i) for i in range(64)]
    e2e_reserve = 0.0 if args.dry_run else 150.0
    records, reference, best = [], None, None
    if args.e2e_only:
        cfg = next((c for c in configs(cuda) if c["name"] == args.e2e_only), None)
        if cfg is None:
            ap.error(f"--e2e-only: no configuration {args.e2e_only!r}")
        best = {**cfg, "run_images_per_s": args.e2e_rate}
    for cfg in [] if args.e2e_only else configs(cuda):
        left = deadline - time.monotonic()
        if cfg.get("mode") == "cudagraphs" and not cuda:
            records.append({"name": cfg["name"], "skipped": "CUDA graphs need CUDA"})
            continue
        if left < e2e_reserve + 20:
            records.append({"name": cfg["name"], "skipped": f"time budget ({left:.0f} s left)"})
            continue
        try:
            rec, images = run_config(cfg, model, maps, device, window, flop, reference)
        except Exception as e:  # noqa: BLE001 -- record it, go on with the others
            records.append({"name": cfg["name"], "error": f"{type(e).__name__}: {e}"[:500]})
            if cuda:
                torch.cuda.empty_cache()
            continue
        if cfg.get("baseline"):
            reference = images
            rec.update(max_abs_uint8=0, mean_abs_uint8=0.0)
        records.append(rec)
        if rec.get("max_abs_uint8", 99) <= 8 and (best is None or rec["run_images_per_s"]
                                                  > best["run_images_per_s"]):
            best = {**rec, **{k: cfg.get(k) for k in ("half", "channels_last", "mode")}}
    result["configs"] = records
    result["best"] = best and {k: best.get(k) for k in ("name", "run_images_per_s", "run_tflops",
                                                        "engine_images_per_s", "engine_tflops")}
    result["end_to_end"] = _end_to_end(args, best, model, size, cuda, deadline, flop)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return _emit(result, args.out)


def _end_to_end(args, best: dict | None, model, size, cuda: bool, deadline: float,
                flop: float) -> dict:
    """The model run (best configuration) and the null-engine run of ``generate``."""
    if best is None:
        return {"skipped": "no configuration ran"}
    shm = Path("/dev/shm")
    if not shm.is_dir() or shutil.disk_usage(shm).free < 8 * 2**30:  # a small /dev/shm fills
        shm = Path(tempfile.gettempdir())
    root = shm / f"sisgen_gpu_check_{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    out: dict = {"folder": str(shm), "folder_free_gb": round(shutil.disk_usage(shm).free / 2**30,
                                                                1)}
    cores = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (0 if not cuda
                                                             else max(1, cores // 4))
    write_workers = (args.write_workers if args.write_workers is not None
                     else (0 if not cuda else max(1, cores - workers - 2)))
    spm = 4 if cuda else 2
    try:
        model.save(root / "model")
        for engine in ("model", "null"):
            if engine not in args.e2e_engines.split(","):
                continue
            left = deadline - time.monotonic()
            if left < (40 if cuda else 5):
                out[engine] = {"skipped": f"time budget ({left:.0f} s left)"}
                continue
            rate = min(best["run_images_per_s"], 1500.0) if engine == "model" else 600.0
            seconds = min(args.e2e_seconds if engine == "model" else 30.0, left - 40)
            maps = 2 if not cuda else max(16, math.ceil(rate * seconds / spm))
            spec = {"engine": engine, "model": str(root / "model"), "device": "cuda" if cuda
                    else "cpu", "mode": best.get("mode") or "eager",
                    "half": best.get("half") or False,
                    "channels_last": bool(best.get("channels_last")), "size": list(size),
                    "maps": maps, "samples_per_map": spm, "batch": best["batch"],
                    "workers": workers, "write_workers": write_workers,
                    "out": str(root / f"out_{engine}")}
            out[engine] = end_to_end(spec, left - 10, flop if engine == "model" else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def _emit(result: dict, path: str | None) -> int:
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
