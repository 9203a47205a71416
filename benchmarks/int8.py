"""int8 vs fp32 ONNX of one trained generator: engine speed and image quality, as JSON.

    python benchmarks/int8.py --model runs/ds/generator/train/model \
        --segmenter runs/ds/reference/segmenter.onnx --source toycity --maps 256

Exports the model folder three times: fp32; int8 calibrated on random blob maps (the
default of ``sisgen export onnx --int8``), ``int8_blobs``; and int8 calibrated on
``--calibration-maps`` maps of the source's ``--calibration-split``, ``int8_source``
(``sisgen.export.quantize``). Then, on ``--maps`` maps of ``--split`` (noise from seeds
0..N-1, the same for all):

* ``ms_per_image``: the engine alone (onnxruntime CPU, batch ``--batch``), median of
  ``--iters`` timed runs after one warm-up, for each of ``--threads``;
* ``psnr_db`` / ``mean_abs_levels`` / ``max_abs_levels``: each int8 export's uint8 images
  against the fp32 ones;
* ``segmenter_miou`` (with ``--segmenter``): the segmenter's mIoU on each set of images,
  scored against the label maps they were generated from -- does a segmenter still see
  the same scene?

``benchmarks/downstream.py`` trains such a generator and segmenter on ToyCity
(``OUT/generator/train/model``, ``OUT/reference/segmenter.onnx``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import sisgen
from sisgen import sources
from sisgen.engines import images_to_uint8
from sisgen.export import export_onnx
from sisgen.export.quantize import calibration_feeds, calibration_maps
from sisgen.models import load_model
from sisgen.training.metrics.segmentation import ConfusionMatrix


def engine_ms(path: Path, feeds: dict[str, np.ndarray], threads: int, iters: int) -> float:
    """Median milliseconds per image of ``path`` on ``feeds`` with ``threads`` threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times) / len(next(iter(feeds.values())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="trained model folder")
    ap.add_argument("--segmenter", help="segmenter (.onnx / TorchScript) for the mIoU rows")
    ap.add_argument("--source", default="toycity")
    ap.add_argument("--root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--calibration-split", default="train")
    ap.add_argument("--maps", type=int, default=256)
    ap.add_argument("--calibration-maps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iters", type=int, default=8)
    args = ap.parse_args()

    model = load_model(args.model).eval()
    size = tuple(model.resolution)

    def open_source(split: str, length: int):
        extra = {"size": size, "length": length} if args.source == "toycity" else {}
        return sources.open(args.source, args.root, split=split, **extra)

    cal = calibration_maps(open_source(args.calibration_split, args.calibration_maps),
                           args.calibration_maps)
    src = open_source(args.split, args.maps)
    maps = [src.load(i) for i in range(min(args.maps, len(src)))]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fp32, _ = export_onnx(model, Path(tmp, "fp32.onnx"), check=False)
        t1 = time.perf_counter()
        blobs, _ = export_onnx(model, Path(tmp, "int8_blobs.onnx"), check=False, int8=True)
        export_s = {"fp32": round(t1 - t0, 1), "int8": round(time.perf_counter() - t1, 1)}
        own, _ = export_onnx(model, Path(tmp, "int8_source.onnx"), check=False, int8=True,
                             calibration=calibration_feeds(model, cal))
        files = {"fp32": fp32, "int8_blobs": blobs, "int8_source": own}
        gens = {k: sisgen.load(p, threads=max(args.threads)) for k, p in files.items()}
        images: dict[str, list[np.ndarray]] = {k: [] for k in files}
        timing_feeds = None
        for lo in range(0, len(maps), args.batch):
            chunk = maps[lo:lo + args.batch]
            inputs = gens["fp32"].prepare_named(chunk, list(range(lo, lo + len(chunk))))
            if timing_feeds is None and len(chunk) == args.batch:
                names = gens["fp32"].engine.input_names
                timing_feeds = {n: t.numpy() for n, t in inputs.items() if n in names}
            for k, gen in gens.items():
                images[k].append(images_to_uint8(torch.as_tensor(gen(**inputs))))
        ms = {k: {str(t): round(engine_ms(files[k], timing_feeds, t, args.iters), 2)
                  for t in args.threads} for k in ("fp32", "int8_blobs")}
        size_mb = {k: round(p.stat().st_size / 1e6, 2) for k, p in files.items()}
    stacked = {k: np.concatenate(v) for k, v in images.items()}
    result = {
        "model": args.model, "resolution": list(size), "maps": len(maps), "source": args.source,
        "export_s": export_s, "file_mb": size_mb, "ms_per_image": ms,
        "speedup": {t: round(ms["fp32"][t] / ms["int8_blobs"][t], 2) for t in ms["fp32"]},
        "psnr_db": {}, "mean_abs_levels": {}, "max_abs_levels": {},
    }
    for k in ("int8_blobs", "int8_source"):
        diff = stacked[k].astype(np.float64) - stacked["fp32"].astype(np.float64)
        mse = float((diff ** 2).mean())
        result["psnr_db"][k] = round(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)), 2)
        result["mean_abs_levels"][k] = round(float(np.abs(diff).mean()), 2)
        result["max_abs_levels"][k] = int(np.abs(diff).max())
    if args.segmenter:
        from sisgen.segmenter import Segmenter

        seg = Segmenter(args.segmenter)
        labels = np.stack([(m if m.shape == size else m.resized(size)).semantic for m in maps])
        result["segmenter_miou"] = {}
        for k, ims in stacked.items():
            cm = ConfusionMatrix()
            cm.update(seg.predict(ims), labels)
            result["segmenter_miou"][k] = round(100 * cm.miou(), 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
