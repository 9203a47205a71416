"""Does synthetic data help a segmenter? The curation loop on ToyCity, measured, as JSON.

One command runs the whole protocol on a CPU (defaults: about an hour on 2 cores)::

    python benchmarks/downstream.py --out runs/downstream
    python benchmarks/downstream.py --out runs/downstream-quick --quick   # minutes, a smoke run

Protocol (every choice below is a flag):

* **Data.** ToyCity at 64x128. ``R``: ``--real`` photo/label pairs (split ``train``);
  ``E``: ``--extra`` extra label maps (split ``extra``; their photos are used only by the
  oracle arm); ``T``: ``--test`` held-out photos (split ``test``) that score every arm.
* **Generator** trained *only on R* (``--gen-preset``, ``--gen-minutes`` of wall time),
  with ``--gen-seg`` > 0 also under the semantic consistency loss of the reference
  segmenter below (:mod:`sisgen.training.semantic`; that segmenter saw only R too),
  exported to ONNX; all synthetic images go through ``sisgen.generate`` with the folder
  writer and are read back from disk by :class:`sisgen.integrations.LabeledDataset`, as a
  user's training pipeline would read them.
* **Reference segmenter** trained on R (the same trainer as the arms, seed 1000; ONNX and
  TorchScript); its per-class mean loss on R is the reference of the loss filter
  (:func:`sisgen.curation.compute_reference_stats`).
* **Synthetic sets.** Scenario ``same_masks`` (FreeMask's setting): from R's own maps,
  edited by ``RECIPE`` (flips, car/person swaps, pasted rare instances). Scenario
  ``extra_layouts``: from E's maps. Per scenario three sets of the same size: ``raw``
  (``--samples-per-map`` samples of every map, no filtering), ``filtered`` (the same
  samples, pixels whose loss exceeds ``--loss-factor`` x their class's mean real loss
  written as ignore) and ``curated`` (filtered, and the samples distributed by a
  hardness + class-balance plan with at most ``--max-samples`` per map: hardness scored on
  R's photos for the same masks, on a first synthetic pass for the extra layouts).
* **Class transfer**: which classes the generator renders too poorly to learn from
  (:func:`sisgen.training.segmenter.class_transfer`, R only: a segmenter trained on the
  extra layouts' raw set and one trained on R's first half, both scored on R's second
  half); the classes whose ratio is below ``--transfer-below`` are ignored in the
  ``R+S_transfer`` arms (the raw sets, read with those classes as ignore pixels).
* **Arms**, each a segmenter (:func:`sisgen.training.segmenter.train_segmenter`) trained for
  the same ``--steps`` with ``--batch`` real images per step; mixed arms add
  ``--second-batch`` (default ``--batch``) synthetic images per step on top (the real set
  is never starved: every arm that has R sees exactly as many real images as the R arm),
  ``S_only`` uses ``--batch`` synthetic (curated) images, ``R+oracle`` adds
  ``--second-batch`` real photos of E's layouts. Mixed arms normalise each stream with its
  own batch statistics and keep R's for evaluation (``--separate-norm``, the default;
  :mod:`sisgen.training.segmenter.norm`). ``S_only_adabn`` is ``S_only`` with its batch-norm
  statistics measured anew on R's photos after training (AdaBN: no real label is read).
* **Scoring**: mIoU (percent) on T, for ``--seeds`` seeds per arm; seed ``s`` gives every
  arm the same initial weights, so gains are paired per seed, and their standard errors are
  those of the paired differences.

Prints one JSON object (``miou`` per scenario and arm with mean/std/stderr/runs, the gains,
``oracle_share_curated``, ``synthetic_only_ratio`` (and ``_adabn``), ``stderr``,
``targets``, ``minutes``, the ``transfer_ignored`` classes, and the generator's
``appearance`` diversity on T's maps, see :func:`appearance`) and writes it to
``OUT/result.json`` with a bar chart ``OUT/downstream.png``. Finished stages and arms are
kept in ``OUT`` and reused when the command is run again (delete ``OUT`` for a fresh run);
``minutes`` counts only the work of this invocation, ``stage_minutes`` every stage
whichever invocation ran it (``OUT/stages.json``, the sets' and arms' own records).
``--until STAGE`` stops after a stage and prints the stage records: for example, train the
generator where a GPU is (the trainer uses CUDA when present) with ``--until generator``,
copy ``OUT`` and run the same command without ``--until`` on any machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SIZE = (64, 128)
RECIPE = """\
# The same-masks scenario's edits: more variety from the same layouts.
edits:
  - {op: hflip, p: 0.5}
  - {op: paste, classes: [person, traffic sign, pole], range: [1, 3], p: 0.5}
  - {op: swap, a: car, b: person, p: 0.1}
"""
SCENARIOS = ("same_masks", "extra_layouts")
SYNTHETIC = ("raw", "filtered", "curated")
#: The filter settings whose sets (and arms) keep their plain names; other settings add a
#: suffix, so a sweep of ``--loss-factor`` / ``--max-ignored`` reuses only what matches.
DEFAULT_FILTER = (1.25, 0.5)
#: The transfer ratio below which a class is ignored in the ``R+S_transfer`` arms.
DEFAULT_TRANSFER_BELOW = 0.8
#: The last "stream" of an arm that recalibrates its batch norms on R's photos (no labels)
#: after training (:func:`sisgen.training.segmenter.recalibrate_norm`, AdaBN).
RECALIBRATE = "norm:R"
#: The stages ``--until`` can stop after, in the order they run.
STAGES = ("generator", "synthetic_sets")


def set_name(args: argparse.Namespace, kind: str) -> str:
    """The folder / stream name of a synthetic set: ``kind``, plus the filter settings
    when they are not :data:`DEFAULT_FILTER` (the raw set is never filtered), or the
    transfer threshold when it is not :data:`DEFAULT_TRANSFER_BELOW`."""
    if kind == "transfer":
        below = args.transfer_below
        return kind if below == DEFAULT_TRANSFER_BELOW else f"{kind}_b{below:g}"
    if kind == "raw" or (args.loss_factor, args.max_ignored) == DEFAULT_FILTER:
        return kind
    return f"{kind}_f{args.loss_factor:g}_i{args.max_ignored:g}"


# ----------------------------------------------------------------------------- data
def _toycity(split: str, length: int, seed: int) -> Any:
    from sisgen import sources

    return sources.open("toycity", split=split, size=SIZE, length=length, seed=seed)


def _data(args: argparse.Namespace) -> dict[str, Any]:
    return {"R": _toycity("train", args.real, args.data_seed),
            "E": _toycity("extra", args.extra, args.data_seed),
            "T": _toycity("test", args.test, args.data_seed)}


def _log(text: str) -> None:
    print(f"[downstream {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- stages
def train_generator(args: argparse.Namespace, out: Path) -> Path:
    """The generator, trained on R only, exported to ONNX (reused when present).

    With ``--gen-seg`` the reference segmenter's TorchScript file (trained on R) gives the
    semantic consistency term; call :func:`reference` first.
    """
    model = out / "generator" / "model.onnx"
    if model.is_file():
        return model
    semantic = []
    if args.gen_seg > 0:
        torchscript = out / "reference" / "segmenter.pt"
        if not torchscript.is_file():
            raise SystemExit(f"{torchscript} is missing (a folder from before --gen-seg): "
                             f"delete {torchscript.parent} to train the reference again")
        semantic = [f"losses.seg={args.gen_seg}", f"segmenter_weights={torchscript}"]
    from sisgen.export import export_onnx
    from sisgen.training.config import load_config
    from sisgen.training.trainer import Trainer

    cfg = load_config(args.gen_preset, [
        f"out_dir={out / 'generator' / 'train'}", f"height={SIZE[0]}", f"width={SIZE[1]}",
        *([f"steps={args.gen_steps}"] if args.gen_steps else
          [f"max_minutes={args.gen_minutes}", "steps=null"]), f"seed={args.data_seed}",
        f"source.length={args.real}", "source.split=train", "sample_every=0",
        "checkpoint_every=1000000", *([f"threads={args.threads}"] if args.threads else []),
        *semantic, *args.gen_override])
    trainer = Trainer(cfg)
    t = time.perf_counter()
    trainer.fit()
    _log(f"generator: {trainer.step} steps in {time.perf_counter() - t:.0f} s")
    export_onnx(trainer.final_generator().cpu(), model)
    _record(out, "generator", time.perf_counter() - t, steps=trainer.step)
    return model


def appearance(model: Path, layouts: Any, count: int = 64) -> dict[str, float]:
    """How much the generator's images vary with the seed, against the real photos.

    On the first ``count`` maps of ``layouts`` (with photos): the mean absolute difference
    (levels of 255) between two seeds of the same map (``seed_to_seed``) and between an
    image and the real photo of its map (``to_photo``), and the mean per-image standard
    deviation of the generated images and of the photos (``std_generated`` /
    ``std_photo``). A ``seed_to_seed`` far below ``to_photo`` means one appearance per
    layout: the generator ignores its noise.
    """
    from sisgen import load

    generator = load(model)
    n = min(count, len(layouts))
    maps = [layouts.load(i) for i in range(n)]
    first = np.stack(generator.generate(maps, seeds=list(range(n)))).astype(np.float32)
    second = np.stack(generator.generate(maps, seeds=list(range(n, 2 * n)))).astype(np.float32)
    photos = np.stack([layouts.photo(i) for i in range(n)]).astype(np.float32)
    return {"maps": n,
            "seed_to_seed": round(float(np.abs(first - second).mean()), 2),
            "to_photo": round(float(np.abs(first - photos).mean()), 2),
            "std_generated": round(float(first.std(axis=(1, 2)).mean()), 2),
            "std_photo": round(float(photos.std(axis=(1, 2)).mean()), 2)}


def _stages(out: Path) -> dict[str, Any]:
    """The stage records of ``out/stages.json`` (empty before the first)."""
    path = out / "stages.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(out: Path, stage: str, seconds: float, **facts: Any) -> None:
    """Note a stage's time in ``out/stages.json`` (a later run that reuses it reports it)."""
    stages = _stages(out)
    stages[stage] = {"seconds": round(seconds, 1), **facts}
    (out / "stages.json").write_text(json.dumps(stages, indent=1), encoding="utf-8")


def stage_minutes(out: Path, arm_seconds: float) -> dict[str, float | None]:
    """Minutes of every stage, whichever invocation ran it (``None``: not recorded)."""
    stages = _stages(out)
    sets = [json.loads(f.read_text(encoding="utf-8"))["wall_s"]
            for f in sorted((out / "synthetic").glob("*/done"))]
    minutes: dict[str, float | None] = {
        name: round(stages[name]["seconds"] / 60, 1) if name in stages else None
        for name in ("generator", "reference", "transfer")}
    minutes["synthetic_sets"] = round(sum(sets) / 60, 1)
    minutes["segmenter_arms"] = round(arm_seconds / 60, 1)
    return minutes


def _train_arm(streams: list[tuple[Any, int]], args: argparse.Namespace, seed: int) -> Any:
    from sisgen.training.segmenter import train_segmenter

    net, _ = train_segmenter(streams, steps=args.steps, seed=seed, size=SIZE, width=args.width,
                             threads=1, bf16=args.bf16, separate_norm=args.separate_norm)
    return net


def reference(args: argparse.Namespace, out: Path, data: dict[str, Any]) -> tuple[Any, Any]:
    """The reference segmenter (trained on R) and its statistics on R."""
    from sisgen.curation import ReferenceStats, compute_reference_stats
    from sisgen.filtering import Segmenter
    from sisgen.integrations import LabeledDataset
    from sisgen.training.segmenter.export import export_segmenter

    folder = out / "reference"
    path, stats_path = folder / "segmenter.onnx", folder / "stats.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        net = _train_arm([(LabeledDataset(data["R"]), args.batch)], args, seed=1000)
        export_segmenter(net, path.with_suffix(".pt"), vocabulary=data["R"].vocabulary,
                         size=SIZE, format="torchscript")
        export_segmenter(net, path, vocabulary=data["R"].vocabulary, size=SIZE)
        _record(out, "reference", time.perf_counter() - t)
    segmenter = Segmenter(path)
    if not stats_path.is_file():
        compute_reference_stats(segmenter, data["R"]).save(stats_path)
    return segmenter, ReferenceStats.load(stats_path, vocabulary=data["R"].vocabulary)


def _plan(args: argparse.Namespace, out: Path, scenario: str, layouts: Any, generator: Any,
          segmenter: Any, stats: Any, total: int) -> Any:
    """Hardness (on photos or a synthetic pass) times class balance, ``total`` samples."""
    from sisgen.curation import Plan, balance_plan, hardness_plan

    path = out / "plans" / f"{scenario}.json"
    if path.is_file():
        return Plan.load(path, source=layouts)
    if scenario == "same_masks":
        hard = hardness_plan(segmenter, layouts, args.max_samples, photos=True, stats=stats)
    else:
        hard = hardness_plan(segmenter, layouts, args.max_samples, generator=generator,
                             seed=args.data_seed + 17, stats=stats)
    plan = balance_plan(layouts, base=hard, total=total, max_samples=args.max_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan.save(path)
    return plan


def synthesize(args: argparse.Namespace, out: Path, data: dict[str, Any], model: Path,
               segmenter: Any, stats: Any) -> dict[str, dict[str, Path]]:
    """Write the three synthetic sets of both scenarios; returns their folder datasets."""
    from sisgen import load
    from sisgen.filtering import QualityFilter
    from sisgen.generate import generate

    generator = load(model)
    sets: dict[str, dict[str, Path]] = {}  # scenario -> set name -> folder dataset
    for scenario, layouts, recipe in (("same_masks", data["R"], RECIPE),
                                      ("extra_layouts", data["E"], None)):
        total = len(layouts) * args.samples_per_map
        plan = _plan(args, out, scenario, layouts, generator, segmenter, stats, total)
        sets[scenario] = {}
        for kind in SYNTHETIC:
            folder = out / "synthetic" / f"{scenario}_{set_name(args, kind)}"
            sets[scenario][set_name(args, kind)] = folder / "folder"
            if (folder / "done").is_file():
                continue
            shutil.rmtree(folder, ignore_errors=True)
            qf = None if kind == "raw" else QualityFilter(
                segmenter, mode="loss", reference=stats, factor=args.loss_factor,
                max_ignored=args.max_ignored, min_miou=0.0)
            t = time.perf_counter()
            amount = ({"plan": plan} if kind == "curated"
                      else {"samples_per_map": args.samples_per_map})
            report = generate(generator, layouts, folder, writers=("folder",), recipe=recipe,
                              seed=args.data_seed, batch_size=16, quality_filter=qf,
                              progress=False, **amount)
            (folder / "done").write_text(json.dumps(report.to_dict()), encoding="utf-8")
            _log(f"{scenario}/{kind}: {report.written} images "
                 f"({report.filtered} dropped) in {time.perf_counter() - t:.0f} s")
    return sets


def class_transfer_stage(args: argparse.Namespace, out: Path, data: dict[str, Any],
                         sets: dict[str, dict[str, Path]]) -> list[str]:
    """The classes the ``R+S_transfer`` arms ignore; adds those sets to ``sets``.

    The transfer is measured once (``OUT/transfer.json``) on the extra layouts' raw set,
    whose maps are not R's, and applies to both scenarios: how well a class is rendered is
    the generator's, not the layouts'.
    """
    from sisgen import sources
    from sisgen.integrations import LabeledDataset
    from sisgen.training.segmenter import ClassTransfer, class_transfer

    path = out / "transfer.json"
    if not path.is_file():
        t = time.perf_counter()
        synthetic = LabeledDataset(sources.open("folder", sets["extra_layouts"]["raw"]))
        class_transfer(synthetic, LabeledDataset(data["R"]), steps=args.steps,
                       batch_size=args.batch, seed=1000, size=SIZE, width=args.width,
                       threads=1).save(path)
        _record(out, "transfer", time.perf_counter() - t)
    poor = ClassTransfer.load(path, vocabulary=data["R"].vocabulary).poor_classes(
        args.transfer_below)
    _log(f"class transfer: {poor or 'no class'} below {args.transfer_below:g}, ignored in "
         "the R+S_transfer arms")
    for scenario in SCENARIOS:
        sets[scenario][set_name(args, "transfer")] = sets[scenario]["raw"]
    return poor


# ----------------------------------------------------------------------------- arms
def arms(args: argparse.Namespace) -> dict[str, dict[str, list[str]]]:
    """Scenario -> arm -> the streams it trains on (``--batch`` items per step each; a
    mixed arm's second stream ``--second-batch``)."""
    table: dict[str, dict[str, list[str]]] = {}
    for scenario in SCENARIOS:
        table[scenario] = {"R": ["R"]}
        for kind in SYNTHETIC:
            table[scenario][f"R+S_{kind}"] = ["R", f"{scenario}/{set_name(args, kind)}"]
        table[scenario]["R+S_transfer"] = ["R", f"{scenario}/{set_name(args, 'transfer')}"]
        table[scenario]["S_only"] = [f"{scenario}/{set_name(args, 'curated')}"]
        table[scenario]["S_only_adabn"] = [*table[scenario]["S_only"], RECALIBRATE]
    table["extra_layouts"]["R+oracle"] = ["R", "E"]
    return table


def _stream(name: str, data: dict[str, Any], sets: dict[str, dict[str, Path]],
            ignore: Sequence[str] = ()) -> Any:
    from sisgen import sources
    from sisgen.integrations import LabeledDataset

    if name in data:
        return LabeledDataset(data[name])
    scenario, kind = name.split("/")
    return LabeledDataset(sources.open("folder", sets[scenario][kind]),
                          ignore_classes=ignore if kind.startswith("transfer") else ())


def trained_streams(streams: Sequence[str]) -> list[str]:
    """The streams an arm trains on: all but the :data:`RECALIBRATE` marker."""
    return [n for n in streams if n != RECALIBRATE]


def _second_batch(args: argparse.Namespace) -> int:
    """Items per step of a mixed arm's second stream (synthetic or oracle)."""
    return args.batch if args.second_batch is None else args.second_batch


def run_arm(job: tuple[dict[str, Any], list[str], int, str]) -> dict[str, Any]:
    """Train and score one (arm, seed); the result is cached in its JSON file."""
    config, streams, seed, path = job
    args = argparse.Namespace(**config)
    import torch

    torch.set_num_threads(1)
    from sisgen.training.segmenter import evaluate_segmenter

    data = _data(args)
    sets = {s: {k: Path(p) for k, p in v.items()} for s, v in config["sets"].items()}
    t = time.perf_counter()
    train = trained_streams(streams)
    sizes = [args.batch] + [_second_batch(args)] * (len(train) - 1)
    net = _train_arm([(_stream(n, data, sets, config["transfer_ignore"]), size)
                      for n, size in zip(train, sizes, strict=True)], args, seed)
    if RECALIBRATE in streams:
        from sisgen.training.segmenter import recalibrate_norm

        recalibrate_norm(net, _stream("R", data, sets), batch_size=args.batch)
    score = evaluate_segmenter(net, _stream("T", data, sets), batch_size=64)
    result = {"streams": streams, "seed": seed, "miou": score["miou"], "iou": score["iou"],
              "seconds": round(time.perf_counter() - t, 1)}
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, path)
    return result


def run_arms(args: argparse.Namespace, out: Path, sets: dict[str, dict[str, Path]],
             ignore: Sequence[str]) -> tuple[dict[tuple[str, ...], list[float]], float]:
    """mIoU of every distinct arm (by its streams) for every seed, and the seconds of all
    those runs (cached ones included); runs ``--jobs`` at once. ``ignore``: the classes
    the transfer arms ignore."""
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config["sets"] = {s: {k: str(p) for k, p in v.items()} for s, v in sets.items()}
    config["transfer_ignore"] = list(ignore)
    distinct = sorted({tuple(v) for arm in arms(args).values() for v in arm.values()})
    (out / "arms").mkdir(parents=True, exist_ok=True)
    jobs, results = [], {}
    for streams in distinct:
        for seed in range(args.seeds):
            precision = "_bf16" if args.bf16 else ""
            mixed = len(trained_streams(streams)) > 1
            mix = (f"_second{_second_batch(args)}"
                   if mixed and _second_batch(args) != args.batch else "")
            mix += "_sn" if mixed and args.separate_norm else ""
            label = "+".join(streams).replace("/", "_").replace(RECALIBRATE, "adabn")
            name = f"{label}_steps{args.steps}{mix}{precision}_seed{seed}.json"
            path = out / "arms" / name
            if path.is_file():
                results[(streams, seed)] = json.loads(path.read_text(encoding="utf-8"))
            else:
                jobs.append((config, list(streams), seed, str(path)))
    _log(f"{len(jobs)} segmenter runs to do ({len(results)} cached)")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run_arm, jobs):
            results[(tuple(r["streams"]), r["seed"])] = r
            _log(f"{'+'.join(r['streams'])} seed {r['seed']}: {r['miou']:.1f} mIoU "
                 f"({r['seconds']:.0f} s)")
    scores = {s: [results[(s, seed)]["miou"] for seed in range(args.seeds)] for s in distinct}
    return scores, sum(r["seconds"] for r in results.values())


# ----------------------------------------------------------------------------- report
def _stderr(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def summarize(table: dict[str, dict[str, list[str]]], scores: dict[tuple[str, ...], list[float]],
              minutes: float) -> dict[str, Any]:
    """The JSON report: per-arm statistics, paired gains and the issue's targets."""
    def runs(scenario: str, arm: str) -> np.ndarray:
        return np.asarray(scores[tuple(table[scenario][arm])], float)

    miou = {s: {a: {"mean": round(float(runs(s, a).mean()), 2),
                    "std": round(float(runs(s, a).std(ddof=1)), 2) if len(runs(s, a)) > 1
                    else None,
                    "stderr": round(_stderr(runs(s, a)), 2),
                    "runs": [round(v, 2) for v in runs(s, a)]} for a in table[s]}
            for s in table}

    def gain(scenario: str, arm: str, base: str = "R") -> tuple[float, float]:
        d = runs(scenario, arm) - runs(scenario, base)
        return float(d.mean()), _stderr(d)

    gains = {"gain_same_masks": gain("same_masks", "R+S_curated"),
             "gain_raw_same_masks": gain("same_masks", "R+S_raw"),
             "gain_raw_extra": gain("extra_layouts", "R+S_raw"),
             "gain_curated_extra": gain("extra_layouts", "R+S_curated"),
             "gain_oracle_extra": gain("extra_layouts", "R+oracle"),
             "curated_minus_raw_extra": gain("extra_layouts", "R+S_curated", "R+S_raw"),
             "gain_transfer_extra": gain("extra_layouts", "R+S_transfer"),
             "gain_transfer_same_masks": gain("same_masks", "R+S_transfer"),
             "transfer_minus_raw_extra": gain("extra_layouts", "R+S_transfer", "R+S_raw")}
    oracle = gains["gain_oracle_extra"][0]
    share = gains["gain_curated_extra"][0] / oracle if oracle > 0 else math.nan
    r_mean = runs("same_masks", "R").mean()
    ratio = runs("extra_layouts", "S_only").mean() / r_mean
    ratio_same = runs("same_masks", "S_only").mean() / r_mean
    ratio_adabn = runs("extra_layouts", "S_only_adabn").mean() / r_mean

    def sig(name: str) -> bool:
        mean, err = gains[name]
        return bool(mean > 2 * err)

    result: dict[str, Any] = {"miou": miou}
    result.update({k: round(v[0], 2) for k, v in gains.items()})
    result.update({
        "oracle_share_curated": round(share, 3),
        "synthetic_only_ratio": round(float(ratio), 3),
        "synthetic_only_ratio_same_masks": round(float(ratio_same), 3),
        "synthetic_only_ratio_adabn": round(float(ratio_adabn), 3),
        "stderr": {**{k: round(v[1], 2) for k, v in gains.items()},
                   **{f"{s}/{a}": miou[s][a]["stderr"] for s in miou for a in miou[s]}},
        "targets": {
            "extra: curated gain >= 2 and > 2 stderr": bool(
                gains["gain_curated_extra"][0] >= 2 and sig("gain_curated_extra")),
            "extra: >= 60% of the oracle gain": bool(share >= 0.6),
            "extra: curated beats raw by > 2 stderr": sig("curated_minus_raw_extra"),
            "same masks: curated gain >= 1.5 and > 2 stderr": bool(
                gains["gain_same_masks"][0] >= 1.5 and sig("gain_same_masks")),
            "S alone >= 90% of R alone": bool(ratio >= 0.9),
            "S alone, norm statistics of R's unlabeled photos, >= 90% of R alone": bool(
                ratio_adabn >= 0.9),
        },
        "minutes": round(minutes, 1),
    })
    return result


def _finite(value: Any) -> Any:
    """``value`` with every NaN replaced by ``None`` (strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def bar_chart(result: dict[str, Any], path: Path) -> None:
    """Mean mIoU of every arm with +-1 standard error, one group per scenario (PIL)."""
    from PIL import Image, ImageDraw

    groups = [(s, list(result["miou"][s].items())) for s in SCENARIOS]
    bars = sum(len(arms_) for _, arms_ in groups)
    bw, gap, left, top, height = 56, 40, 60, 50, 300
    width = left + bars * bw + gap * len(groups) + 20
    img = Image.new("RGB", (width, top + height + 90), "white")
    d = ImageDraw.Draw(img)
    lo = min(v["mean"] - 3 for _, a in groups for _, v in a) // 5 * 5
    hi = max(v["mean"] + (v["stderr"] or 0) + 3 for _, a in groups for _, v in a)

    def y(v: float) -> float:
        return top + height - (v - lo) / (hi - lo) * height

    for tick in np.arange(lo, hi, 5):
        d.line([(left - 4, y(tick)), (width - 10, y(tick))], fill=(225, 225, 225))
        d.text((8, y(tick) - 6), f"{tick:.0f}", fill="black")
    d.text((8, 10), "mIoU (%) on held-out real ToyCity photos, mean +- stderr over seeds",
           fill="black")
    colours = {"R": (120, 120, 120), "R+oracle": (60, 140, 60), "S_only": (200, 140, 40),
               "S_only_adabn": (230, 180, 90), "R+S_transfer": (150, 90, 170)}
    x = left
    for scenario, items in groups:
        d.text((x, top + height + 55), scenario, fill="black")
        for arm, v in items:
            colour = colours.get(arm, (60, 100, 190) if "curated" in arm else (120, 160, 220))
            d.rectangle([x + 4, y(v["mean"]), x + bw - 4, y(lo)], fill=colour)
            err = v["stderr"] or 0
            d.line([(x + bw / 2, y(v["mean"] - err)), (x + bw / 2, y(v["mean"] + err))],
                   fill="black", width=2)
            d.text((x + 4, y(v["mean"]) - 14), f"{v['mean']:.1f}", fill="black")
            for i, part in enumerate(arm.replace("+", "+\n").split("\n")):
                d.text((x + 2, top + height + 6 + 12 * i), part, fill="black")
            x += bw
        x += gap
    img.save(path)


# ----------------------------------------------------------------------------- main
def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="working folder (stages are reused)")
    p.add_argument("--real", type=int, default=300, help="real pairs R")
    p.add_argument("--extra", type=int, default=1000, help="extra layouts E")
    p.add_argument("--test", type=int, default=500, help="held-out test photos T")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--gen-preset", default="toycity_spade_vae",
                   help="training preset of the generator (the tiny SPADE with the VAE "
                        "encoder; toycity_spade_tiny: without, as the quickstart)")
    p.add_argument("--gen-minutes", type=float, default=15.0)
    p.add_argument("--gen-steps", type=int, default=None,
                   help="train the generator for this many steps instead of --gen-minutes "
                        "(the same model on a busy machine)")
    p.add_argument("--gen-seg", type=float, default=0.0,
                   help="weight of the generator's semantic consistency loss under the "
                        "reference segmenter (0: off)")
    p.add_argument("--gen-override", action="append", default=[],
                   help="extra key=value override of the generator's training config")
    p.add_argument("--samples-per-map", type=int, default=2,
                   help="raw/filtered samples per map; also the curated sets' mean")
    p.add_argument("--max-samples", type=int, default=4, help="K of the curated plans")
    p.add_argument("--loss-factor", type=float, default=1.25)
    p.add_argument("--max-ignored", type=float, default=0.5,
                   help="drop a synthetic image with more than this fraction ignored")
    p.add_argument("--transfer-below", type=float, default=DEFAULT_TRANSFER_BELOW,
                   help="the R+S_transfer arms ignore the classes whose transfer ratio "
                        "(synthetic-trained / real-trained IoU on real pairs) is below this")
    p.add_argument("--steps", type=int, default=1000, help="segmenter steps of every arm")
    p.add_argument("--batch", type=int, default=16, help="images per stream per step")
    p.add_argument("--second-batch", type=int, default=None,
                   help="images per step of a mixed arm's second stream (synthetic or oracle; "
                        "default --batch: half of each step); the real stream keeps --batch")
    p.add_argument("--separate-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="mixed arms normalise each stream with its own batch statistics and "
                        "keep R's for evaluation (domain-specific batch norm; arms cached "
                        "separately)")
    p.add_argument("--width", type=int, default=16, help="segmenter width")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="segmenter runs at once (1 thread each)")
    p.add_argument("--bf16", action="store_true",
                   help="segmenters under bfloat16 autocast (~1.5x faster on CPUs with bf16 "
                        "support; arms cached separately)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the generator")
    p.add_argument("--until", choices=STAGES, default=None,
                   help="stop after this stage (e.g. train the generator on a GPU machine, "
                        "then run the rest where the folder was copied)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run in minutes: tiny sets, short training, 2 seeds")
    args = p.parse_args(argv)
    if args.quick:
        args.real, args.extra, args.test = 48, 64, 64
        args.gen_minutes, args.steps, args.seeds = 0.5, 30, 2
    return args


def _stopped(args: argparse.Namespace, out: Path) -> int:
    """Print the finished stages' records after ``--until`` stopped the run."""
    print(json.dumps({"stopped_after": args.until, "stages": _stages(out)}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = _data(args)
    segmenter, stats = reference(args, out, data)
    model = train_generator(args, out)
    if args.until == "generator":
        return _stopped(args, out)
    sets = synthesize(args, out, data, model, segmenter, stats)
    if args.until == "synthetic_sets":
        return _stopped(args, out)
    ignore = class_transfer_stage(args, out, data, sets)
    scores, arm_seconds = run_arms(args, out, sets, ignore)
    result = summarize(arms(args), scores, (time.perf_counter() - t0) / 60)
    result["stage_minutes"] = stage_minutes(out, arm_seconds)
    result["appearance"] = appearance(model, data["T"])
    result["transfer_ignored"] = ignore
    result["config"] = {k: v for k, v in vars(args).items()}
    result = _finite(result)
    (out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    bar_chart(result, out / "downstream.png")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
