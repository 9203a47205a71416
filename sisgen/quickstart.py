"""``sisgen quickstart``: the whole product in one command, on a CPU, in minutes.

1. make ToyCity data (the built-in procedural street scenes);
2. train a tiny SPADE generator on it for a fixed time budget;
3. export it to ONNX and check parity with torch;
4. generate a labeled dataset (Cityscapes layout + COCO JSON + manifest) from ToyCity
   validation label maps, edited by a recipe, through the ONNX Runtime engine;
5. write a contact sheet (label map | generated | generated, another seed | real photo).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

QUICKSTART_RECIPE = """\
# The quickstart's edit recipe: each step is seeded per sample.
edits:
  - {op: remove_instances, classes: [person], fraction: 0.5, p: 0.5}
  - {op: relabel, mapping: {grass: vegetation}, p: 0.3}
  - {op: swap, a: sidewalk, b: grass, p: 0.2}
  - {op: hflip, p: 0.5}
"""


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((16, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def contact_sheet(generator, source, indices: list[int], scale: int = 2) -> np.ndarray:
    """Rows of (label | generated | generated with another seed | real photo)."""
    vocab = source.vocabulary
    rows = []
    for i in indices:
        lm = source.load(i)
        photo = source.photo(i)
        a, b = generator.generate([lm, lm], seeds=[1000 + i, 2000 + i])
        cells = [vocab.colorize(lm.semantic), a, b, photo]
        row = np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                              for c in cells], 1)
        rows.append(row)
    sheet = np.concatenate(rows, 0)
    sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    w = sheet.shape[1] // 4
    header = np.concatenate([_caption(np.zeros((0, w, 3), np.uint8), t) for t in
                             ("label map", "generated (seed A)", "generated (seed B)",
                              "real ToyCity photo")], 1)
    header = np.pad(header, ((0, 0), (0, sheet.shape[1] - header.shape[1]), (0, 0)),
                    constant_values=255)
    legend = _legend(vocab, sheet.shape[1])
    return np.concatenate([header, sheet, legend], 0)


def _legend(vocab, width: int) -> np.ndarray:
    cell = 110
    per_row = max(1, width // cell)
    rows = (len(vocab) + per_row - 1) // per_row
    img = np.full((rows * 18 + 4, width, 3), 255, np.uint8)
    for k, c in enumerate(vocab.classes):
        x, y = (k % per_row) * cell + 4, (k // per_row) * 18 + 4
        cv2.rectangle(img, (x, y), (x + 12, y + 12), tuple(int(v) for v in c.color), -1)
        cv2.putText(img, c.name, (x + 16, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return img


def run_quickstart(out_dir: str = "runs/quickstart", minutes: float = 7.0, num_images: int = 200,
                   size: tuple[int, int] = (64, 128), seed: int = 0) -> dict:
    """Run the quickstart end to end and print where everything is.

    Args:
        out_dir: Output folder.
        minutes: Training time budget.
        num_images: Images to generate (>= 1).
        size: Resolution ``(H, W)``; multiples of 32.
        seed: Run seed.

    Returns:
        The summary that is also written to ``out_dir/summary.json``.
    """
    from . import load, sources
    from .export import export_onnx
    from .generate import generate
    from .io import write_image, write_text
    from .training import Trainer, load_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    h, w = size

    print(f"[1/5] ToyCity data at {h}x{w} and [2/5] training a tiny SPADE for {minutes:g} min")
    t0 = time.perf_counter()
    cfg = load_config("toycity_spade_tiny", [
        f"out_dir={out / 'train'}", f"max_minutes={minutes}", f"height={h}", f"width={w}",
        f"seed={seed}", "steps=1000000",
    ])
    trainer = Trainer(cfg)
    timings["data_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    model_dir = trainer.fit()
    timings["train_s"] = time.perf_counter() - t1
    print(f"      trained {trainer.step} steps in {timings['train_s']:.0f} s -> {model_dir}")

    print("[3/5] exporting to ONNX (spectral norm folded, dynamic batch) + parity check")
    t2 = time.perf_counter()
    model = trainer.final_generator().cpu()
    onnx_path, parity = export_onnx(model, out / "model.onnx")
    timings["export_s"] = time.perf_counter() - t2
    print(f"      {onnx_path}: {parity}")

    print(f"[4/5] generating {num_images} labeled images through onnxruntime")
    t3 = time.perf_counter()
    recipe_path = out / "recipe.yaml"
    write_text(recipe_path, QUICKSTART_RECIPE)
    gen = load(onnx_path)
    samples_per_map = 2
    n_maps = (num_images + samples_per_map - 1) // samples_per_map
    val = sources.open("toycity", split="val", size=(h, w), length=n_maps, seed=seed)
    dataset_dir = out / "dataset"
    report = generate(gen, val, dataset_dir, writers=("cityscapes", "coco"),
                      recipe=recipe_path, seed=seed, samples_per_map=samples_per_map,
                      batch_size=16)
    timings["generate_s"] = time.perf_counter() - t3

    print("[5/5] contact sheet")
    sheet = contact_sheet(gen, val, list(range(min(8, len(val)))))
    sheet_path = out / "contact_sheet.png"
    write_image(sheet_path, sheet)

    summary = {
        "model_dir": str(model_dir),
        "onnx": str(onnx_path),
        "parity_max_abs_diff": parity.max_abs if parity else None,
        "parity_mean_abs_diff": parity.mean_abs if parity else None,
        "train_steps": trainer.step,
        "dataset": str(dataset_dir),
        "cityscapes_layout": str(dataset_dir / "cityscapes"),
        "coco_json": str(dataset_dir / "coco" / "annotations"),
        "manifest": report.manifest,
        "images_written": report.written,
        "images_failed": report.failed,
        "generate_images_per_s": round(report.images_per_second, 2),
        "contact_sheet": str(sheet_path),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    with open(out / "summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print("\nquickstart done:")
    for k, v in summary.items():
        print(f"  {k:24s} {v}")
    return summary
