"""Generation throughput: images/s and busy seconds per stage, printed as JSON.

Examples::

    python benchmarks/generate.py --source toycity --limit 200
    python benchmarks/generate.py --source cityscapes --root ../shared/samples/cityscapes \
        --split val --resolution 128x256 --backend onnxruntime --workers 1
    python benchmarks/generate.py --source coco --root ../shared/samples/coco_stuff \
        --split val2017 --resolution 128x128

Without ``--model``, an untrained SPADE of the requested width is built for the source's
vocabulary (throughput does not depend on the weights) and exported to ONNX in a temporary
folder. ``stage_s`` are busy seconds per stage; the stage with the largest share of the
wall time limits throughput (source/edit run in worker processes when ``--workers > 0``,
writing in ``--write-threads`` threads, so their busy time is spread over several cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import torch

import sisgen
from sisgen import sources
from sisgen.generate import generate

DATASET_OF = {"cityscapes": "cityscapes", "coco": "coco_stuff", "coco_stuff": "coco_stuff",
              "toycity": "toycity"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="toycity", choices=sorted(DATASET_OF))
    ap.add_argument("--root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--model", help="model folder or .onnx (default: untrained SPADE)")
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--resolution", default="64x128")
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--samples-per-map", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--write-threads", type=int, default=2)
    ap.add_argument("--writers", default="cityscapes,coco")
    ap.add_argument("--recipe", default="edits: [{op: hflip, p: 0.5}]")
    args = ap.parse_args()
    h, w = (int(v) for v in args.resolution.split("x"))
    dataset = DATASET_OF[args.source]

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            from sisgen.export import export_onnx
            from sisgen.models import build_model

            model = build_model("spade", dataset=dataset, ngf=args.ngf, spade_hidden=2 * args.ngf,
                                z_dim=64, height=h, width=w)
            if args.backend == "onnxruntime":
                model_path, _ = export_onnx(model, os.path.join(tmp, "model.onnx"), check=False)
            else:
                model_path = model.save(os.path.join(tmp, "model"))
        gen = sisgen.load(model_path)
        kwargs = {"size": gen.resolution, "length": args.limit} if args.source == "toycity" else {}
        src = sources.open(args.source, args.root, split=args.split, **kwargs)
        t0 = time.perf_counter()
        report = generate(gen, src, os.path.join(tmp, "out"), writers=args.writers.split(","),
                          recipe=args.recipe, samples_per_map=args.samples_per_map,
                          batch_size=args.batch_size, limit=args.limit, workers=args.workers,
                          write_threads=args.write_threads, progress=False)
        wall = time.perf_counter() - t0
    stages = report.seconds
    per_image_ms = {k: round(1000 * v / max(report.written, 1), 2) for k, v in stages.items()}
    result = {
        "source": args.source, "split": args.split, "backend": gen.backend,
        "resolution": list(gen.resolution), "batch_size": args.batch_size,
        "workers": args.workers, "write_threads": args.write_threads,
        "writers": args.writers, "images": report.written, "failed": report.failed,
        "wall_s": round(wall, 3), "images_per_s": round(report.written / wall, 2),
        "stage_busy_s": {k: round(v, 3) for k, v in stages.items()},
        "stage_ms_per_image": per_image_ms,
        "limiting_stage": max(stages, key=stages.get),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": sys.version.split()[0], "platform": platform.platform()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
