"""Host pipeline throughput of ``sisgen generate``: images/s and busy seconds per stage, as JSON.

Examples::

    # host work only: an instant engine that returns a real photo (the issue's configuration)
    python benchmarks/pipeline.py --engine null --source cityscapes \
        --root ../shared/samples/cityscapes --split val --size 256x512 --samples-per-map 4 \
        --cores 1
    python benchmarks/pipeline.py --engine null ... --cores 2
    # a real engine: ToyCity through onnxruntime (an untrained tiny SPADE unless --model)
    python benchmarks/pipeline.py --engine onnx --source toycity --size 64x128 --limit 200
    # the same with an int8 export (calibrated on blob maps; speed does not depend on it)
    python benchmarks/pipeline.py --engine onnx --int8 --source toycity --size 64x128 ...

``--engine null`` measures only what the host does (load, validate, edit, resize, engine
inputs, uint8 images, encoding, RLE, writing, the manifest): it returns, instantly, a fixed
photo from ``../shared/samples`` (or a textured image when the samples are absent) resized
to the run's resolution, so JPEG/PNG costs are those of a real image. ``--cores N`` pins the
process (and the worker processes it starts) to N cores and, unless given, picks
``--workers`` / ``--write-threads`` for that many cores (everything inline on one core;
N-1 prepare processes and N write threads on N cores; ``--write-workers`` for processes).
``stage_s`` are busy seconds per
stage summed over workers and threads; the stage with the largest share limits throughput.
``main_cpu_ms_per_image`` is the CPU time of the main process (all its threads, none of the
worker processes) per written image: with worker processes, what limits a many-core run.
``--map-cache DIR`` reads the maps through :class:`sisgen.sources.cached.CachedSource`
(decoded once, before the timed runs), as repeated runs over one source would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sisgen.sources import Source

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("SISGEN_SAMPLES", REPO.parent / "shared" / "samples"))
DATASET_OF = {"cityscapes": "cityscapes", "coco": "coco_stuff", "coco_stuff": "coco_stuff",
              "toycity": "toycity", "folder": "cityscapes"}
DEFAULT_RECIPE = """\
edits:
  - {op: hflip, p: 0.5}
  - {op: swap, a: car, b: truck, p: 0.5}
"""
TOYCITY_RECIPE = """\
edits:
  - {op: hflip, p: 0.5}
  - {op: swap, a: car, b: person, p: 0.5}
"""


def _photo(size: tuple[int, int]) -> np.ndarray:
    """A real photo from the samples at ``size`` (a smooth textured image without them)."""
    import cv2

    photos = sorted((SAMPLES / "cityscapes" / "leftImg8bit").rglob("*.png"))
    h, w = size
    if photos:
        img = cv2.cvtColor(cv2.imread(str(photos[0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noise = cv2.resize(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8),
                       (w, h), interpolation=cv2.INTER_CUBIC)
    return noise


class NullEngine:
    """An engine that costs nothing: the same uint8 ``[B,H,W,3]`` photo for every sample."""

    def __init__(self, photo: np.ndarray):
        self.photo = photo

    def __call__(self, labels, edges=None, noise=None, **named):  # noqa: D102
        return np.broadcast_to(self.photo, (labels.shape[0], *self.photo.shape))


class Cycled(Source):
    """A source repeated ``times`` times (new sample ids), for runs longer than the samples."""

    def __init__(self, inner: Source, times: int):
        self.inner, self.times = inner, int(times)
        self.kind, self.vocabulary = inner.kind, inner.vocabulary

    def keys(self) -> list[str]:  # noqa: D102
        return [f"{k}_r{r}" for r in range(self.times) for k in self.inner.keys()]

    def __len__(self) -> int:
        return len(self.inner) * self.times

    def load(self, index: int):  # noqa: D102
        lm = self.inner.load(index % len(self.inner))
        lm.meta["id"] = f"{lm.id}_r{index // len(self.inner)}"
        return lm

    def photo(self, index: int):  # noqa: D102
        return self.inner.photo(index % len(self.inner))


def null_generator(vocabulary, size: tuple[int, int]):
    """A :class:`~sisgen.engines.Generator` around :class:`NullEngine`."""
    from sisgen.engines import Generator

    return Generator(NullEngine(_photo(size)), vocabulary, size, {}, model_name="null",
                     model_hash="", uses_edges=True, backend="null")


def real_generator(args, dataset: str, size: tuple[int, int], tmp: str):
    """The ``--model`` given, or an untrained SPADE of ``--ngf`` exported for the engine
    (quantized with ``--int8``)."""
    import sisgen
    from sisgen.models import build_model

    path = args.model
    if path is None:
        # the untrained SPADE earlier throughput figures used (ngf 16, SPADE hidden 32)
        model = build_model("spade", dataset=dataset, ngf=args.ngf, spade_hidden=2 * args.ngf,
                            z_dim=64, height=size[0], width=size[1])
        if args.engine == "onnx":
            path = model.export(format="onnx", file=os.path.join(tmp, "model.onnx"),
                                int8=args.int8)
        else:
            path = os.path.join(tmp, "model")
            model.save(path)
    # a folder opens with torch, an .onnx file with onnxruntime (threads 0: its default)
    return sisgen.load(path, threads=args.threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="null", choices=["null", "onnx", "torch"])
    ap.add_argument("--model", help="model folder or .onnx (default: untrained SPADE)")
    ap.add_argument("--source", default="cityscapes", choices=sorted(DATASET_OF))
    ap.add_argument("--root", help="dataset root (default: the samples folder of the source)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--size", default="256x512", help="engine resolution HxW")
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--int8", action="store_true",
                    help="--engine onnx without --model: an int8 export of the untrained SPADE")
    ap.add_argument("--limit", type=int, default=None, help="label maps (default: all)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run this many times (each a fresh output folder); the best counts")
    ap.add_argument("--cycle", type=int, default=1,
                    help="repeat the source's maps this many times in one run (long runs "
                    "from few samples; worker start-up is amortised)")
    ap.add_argument("--samples-per-map", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cores", type=int, default=None, help="pin to this many cores")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0,
                    help="engine threads (generate --threads; 0: the backend's default)")
    ap.add_argument("--write-workers", type=int, default=None)
    ap.add_argument("--write-threads", type=int, default=None)
    ap.add_argument("--writers", default="cityscapes,coco")
    ap.add_argument("--recipe", default=None, help="YAML text or file")
    ap.add_argument("--resize-first", action="store_true",
                    help="resize maps to --size before the edits (generate --resize-first)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--map-cache", default=None,
                    help="keep decoded maps in this folder (sisgen.sources.cached.CachedSource):"
                    " at --size with --resize-first, else at their own size; filled before the "
                    "timed runs (cache_fill_s), so the runs read a warm cache")
    args = ap.parse_args()
    if args.int8 and (args.model or args.engine != "onnx"):
        ap.error("--int8 quantizes the untrained SPADE of --engine onnx; for your own model "
                 "pass the file of `sisgen export onnx --int8` as --model")

    if args.cores:
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
    cores = len(os.sched_getaffinity(0))
    workers = args.workers if args.workers is not None else (0 if cores == 1 else cores - 1)
    writers_n = args.write_workers if args.write_workers is not None else 0
    threads = args.write_threads if args.write_threads is not None else cores
    import cv2
    import torch

    torch.set_num_threads(1 if args.engine == "null" else cores)
    cv2.setNumThreads(1)

    from sisgen import sources
    from sisgen.generate import generate

    h, w = (int(v) for v in args.size.lower().split("x"))
    dataset = DATASET_OF[args.source]
    kwargs = {}
    if args.source == "toycity":
        kwargs = {"size": (h, w), "length": args.limit or 200}
        split = args.split or "val"
        root = None
    else:
        sub = {"cityscapes": "cityscapes", "coco": "coco_stuff", "coco_stuff": "coco_stuff",
               "folder": "folder"}[args.source]
        root = args.root or str(SAMPLES / sub)
        split = args.split or {"cityscapes": "val", "coco": "val2017",
                               "coco_stuff": "val2017"}.get(args.source, "train")
    src = sources.open(args.source, root, split=split, **kwargs)
    cache_fill = None
    if args.map_cache:
        from sisgen.sources.cached import CachedSource

        src = CachedSource(src, args.map_cache, size=(h, w) if args.resize_first else None)
        t0 = time.perf_counter()
        for i in range(len(src) if args.limit is None else min(args.limit, len(src))):
            src.load(i)
        cache_fill = round(time.perf_counter() - t0, 3)
    if args.cycle > 1:
        src = Cycled(src, args.cycle)
    recipe = args.recipe or (TOYCITY_RECIPE if args.source == "toycity" else DEFAULT_RECIPE)

    with tempfile.TemporaryDirectory() as tmp:
        gen = (null_generator(src.vocabulary, (h, w)) if args.engine == "null"
               else real_generator(args, dataset, (h, w), tmp))
        runs = []
        for r in range(args.repeat):
            out = Path(args.out or tmp) / f"run{r}"
            if out.exists():
                shutil.rmtree(out)
            t0, cpu0 = time.perf_counter(), time.process_time()
            report = generate(gen, src, out, writers=tuple(args.writers.split(",")),
                              recipe=recipe, seed=r, samples_per_map=args.samples_per_map,
                              batch_size=args.batch_size, limit=args.limit, workers=workers,
                              write_workers=writers_n, write_threads=threads,
                              resize_first=args.resize_first,
                              progress=False)
            cpu = time.process_time() - cpu0
            runs.append({**report.to_dict(),
                         "process_wall_s": round(time.perf_counter() - t0, 3),
                         "main_cpu_s": round(cpu, 3),
                         "main_cpu_ms_per_image": round(1e3 * cpu / max(report.written, 1),
                                                        2)})
        best = max(runs, key=lambda d: d["images_per_s"])
        print(json.dumps({
            "engine": args.engine, "int8": args.int8, "source": args.source, "split": split,
            "maps": len(src) if args.limit is None else min(args.limit, len(src)),
            "size": [h, w], "samples_per_map": args.samples_per_map,
            "batch_size": args.batch_size, "writers": args.writers, "cores": cores,
            "workers": workers, "write_workers": writers_n, "write_threads": threads,
            "engine_threads": args.threads,
            "resize_first": args.resize_first, "map_cache": args.map_cache,
            "cache_fill_s": cache_fill,
            "images_per_s": best["images_per_s"], "runs": runs,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "argv": sys.argv[1:],
        }, indent=1))


if __name__ == "__main__":
    main()
