"""``sisgen segmenter train`` and ``transfer``: the compact segmenter; class transfer.

``train`` trains, scores and exports the compact segmenter; ``transfer`` measures which
classes of a synthetic set transfer to real photos.

::

    sisgen segmenter train --source toycity --source-option length=300 --size 64x128
        [--synthetic runs/generated --synthetic-per-batch 16] --steps 1000
        --batch-size 16 --seed 0 --out runs/segmenter

writes ``OUT/segmenter.onnx`` and ``OUT/segmenter.pt`` (TorchScript; ``--formats``
chooses), each with its JSON sidecar (see :mod:`.export`), and ``OUT/metrics.json`` (the
validation scores, the training log and the arguments). Sources open as training runs open them
(:func:`sisgen.training.data.open_run_source`): ToyCity renders at ``--size``. The data
never depends on ``--seed`` (a ToyCity source keeps its own seed unless
``--source-option seed=N`` says otherwise), so seeds compare trainings on one data set.
Validation uses ``--val-source`` (default: ``--source``) with ``--val-split`` (default
``val``), its own ``--val-root`` / ``--val-source-option`` and at most ``--val-limit``
pairs; ``--no-val`` skips it. ``--synthetic`` is a folder dataset written by ``sisgen
generate`` (``--writers folder``; a curated one keeps its ignore pixels): each step then
draws ``--batch-size`` real and ``--synthetic-per-batch`` synthetic items; with
``--separate-norm`` each kind is normalised with its own batch statistics and the real ones
are kept for evaluation (:mod:`.norm`).

``sisgen segmenter transfer --source toycity --source-option length=300 --size 64x128
--synthetic runs/generated --steps 400 --below 0.8 --out transfer.json`` runs
:func:`~sisgen.training.segmenter.class_transfer` (real pairs from ``--source``, split in
two by ``--holdout``), writes the per-class ratios to ``--out`` and prints them with the
classes below ``--below``; read the synthetic set with
``LabeledDataset(..., ignore_classes=...)`` of those classes.

The ``sisgen`` command adds this parser with :func:`add_parser` and dispatches to
:func:`run`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sisgen.argtypes import size_arg
from sisgen.errors import SisgenInputError
from sisgen.io import write_json

__all__ = ["add_parser", "run"]


def _count(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return v


def _add_real_source(parser: argparse.ArgumentParser, source_help: str) -> None:
    """``--source`` / ``--root`` / ``--split`` / ``--vocabulary`` / ``--source-option``."""
    parser.add_argument("--source", required=True, help=source_help)
    parser.add_argument("--root", help="dataset root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--vocabulary", help="vocabulary of a folder source (name or file)")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                        help="source option, e.g. length=300 (repeatable)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``segmenter`` (``train`` and ``transfer``) to the ``sisgen`` sub-commands."""
    p = subparsers.add_parser("segmenter", help="train the compact segmenter (curation, "
                              "downstream benchmarks)", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="segmenter_command", required=True)
    t = sub.add_parser("train", help="train, score and export a segmenter")
    _add_real_source(t, "source kind with photos (toycity, ...)")
    t.add_argument("--synthetic", help="a folder dataset written by sisgen generate")
    t.add_argument("--synthetic-per-batch", type=_count, default=None,
                   help="synthetic items per step (default: --batch-size)")
    t.add_argument("--separate-norm", action="store_true",
                   help="normalise real and synthetic items with their own batch statistics "
                        "and keep the real ones for evaluation (domain-specific batch norm)")
    t.add_argument("--size", type=size_arg, default=(64, 128), help="training size HxW")
    t.add_argument("--steps", type=_count, default=1000)
    t.add_argument("--batch-size", type=_count, default=16, help="real items per step")
    t.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate")
    t.add_argument("--width", type=int, default=None, help="SegNet width")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: best for this small network on a busy machine)")
    t.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast (faster on CPUs with native bfloat16)")
    t.add_argument("--val-source", help="validation source kind (default: --source)")
    t.add_argument("--val-root", help="validation root (default: --root)")
    t.add_argument("--val-split", default="val")
    t.add_argument("--val-source-option", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--val-limit", type=_count, default=None, help="score at most N pairs")
    t.add_argument("--no-val", action="store_true", help="skip validation")
    t.add_argument("--formats", default="onnx,torchscript",
                   help="comma-separated export formats (onnx, torchscript)")
    t.add_argument("--out", required=True, help="output folder")
    t.set_defaults(func=run)
    c = sub.add_parser("transfer", help="which classes of a synthetic set transfer to real "
                       "photos (per-class IoU ratio on held-out real pairs)")
    _add_real_source(c, "source kind of the real pairs")
    c.add_argument("--synthetic", required=True,
                   help="a folder dataset written by sisgen generate")
    c.add_argument("--size", type=size_arg, default=(64, 128), help="training size HxW")
    c.add_argument("--holdout", type=float, default=0.5,
                   help="share of the real pairs (the last ones) that scores both segmenters")
    c.add_argument("--steps", type=_count, default=400, help="steps of each segmenter")
    c.add_argument("--batch-size", type=_count, default=16)
    c.add_argument("--width", type=int, default=16, help="SegNet width")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--below", type=float, default=0.8,
                   help="report the classes whose ratio is below this as poor")
    c.add_argument("--out", required=True, help="the JSON file to write")
    c.set_defaults(func=run)
    return p


def _open(kind: str, root: str | None, split: str, options: list[str], vocabulary: str | None,
          size: tuple[int, int], evaluation: bool) -> Any:
    from sisgen.training.config import apply_overrides
    from sisgen.training.data import open_run_source

    spec: dict[str, Any] = {"kind": kind, "split": split, **apply_overrides({}, options)}
    if root is not None:
        spec["root"] = root
    if vocabulary is not None:
        spec["vocabulary"] = vocabulary
    return open_run_source(spec, size, seed=0, evaluation=evaluation)


def _real_pairs(args: argparse.Namespace, size: tuple[int, int]) -> Any:
    from sisgen.training.segmenter import SourcePairs

    return SourcePairs(_open(args.source, args.root, args.split, args.source_option,
                             args.vocabulary, size, False), size)


def _transfer(args: argparse.Namespace) -> int:
    from sisgen import sources
    from sisgen.training.segmenter import SourcePairs, class_transfer

    size = tuple(args.size)
    real = _real_pairs(args, size)
    synthetic = SourcePairs(sources.open("folder", args.synthetic), size)
    result = class_transfer(synthetic, real, holdout=args.holdout, steps=args.steps,
                            batch_size=args.batch_size, seed=args.seed, size=size,
                            width=args.width, threads=args.threads)
    result.save(args.out)
    print(json.dumps({"out": str(args.out), "poor": result.poor_classes(args.below),
                      "ratio": {k: v["ratio"] for k, v in result.classes.items()}}))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``sisgen segmenter <command>``; returns the exit code."""
    if args.segmenter_command == "transfer":
        return _transfer(args)
    if args.segmenter_command != "train":
        raise SisgenInputError(f"unknown segmenter command {args.segmenter_command!r}")
    from sisgen import sources
    from sisgen.training.segmenter import SourcePairs, evaluate_segmenter, train_segmenter
    from sisgen.training.segmenter.export import FORMATS, export_segmenter

    size = tuple(args.size)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise SisgenInputError(f"--formats {args.formats!r}: expected some of "
                               f"{', '.join(FORMATS)}")
    real = _real_pairs(args, size)
    streams: list[tuple[Any, int]] = [(real, args.batch_size)]
    if args.synthetic:
        syn = SourcePairs(sources.open("folder", args.synthetic), size)
        per = args.batch_size if args.synthetic_per_batch is None else args.synthetic_per_batch
        streams.append((syn, per))
    options = {k: v for k, v in (("lr", args.lr), ("width", args.width)) if v is not None}
    net, log = train_segmenter(streams, vocabulary=real.vocabulary, steps=args.steps,
                               seed=args.seed, size=size, threads=args.threads,
                               bf16=args.bf16, separate_norm=args.separate_norm, **options)
    out = Path(args.out)
    files = {fmt: export_segmenter(net, out / f"segmenter{FORMATS[fmt]}",
                                   vocabulary=real.vocabulary, size=size, format=fmt)
             for fmt in formats}
    scores = None
    if not args.no_val:
        val_source = _open(args.val_source or args.source, args.val_root or args.root,
                           args.val_split, args.val_source_option, args.vocabulary, size, True)
        val: Any = SourcePairs(val_source, size)
        if args.val_limit is not None and args.val_limit < len(val):
            from torch.utils.data import Subset

            val = Subset(val, range(args.val_limit))
        scores = evaluate_segmenter(net, val, vocabulary=real.vocabulary, threads=args.threads)
    record = {"val": scores, "train": log.to_dict(),
              "files": {k: str(v) for k, v in files.items()},
              "args": {k: v for k, v in vars(args).items() if k != "func"}}
    write_json(out / "metrics.json", record, indent=2)
    summary = {"out": str(out), "steps": log.steps, "ms_per_step": round(log.ms_per_step, 1)}
    if scores is not None:
        summary.update(miou=round(scores["miou"], 2), pixel_acc=round(scores["pixel_acc"], 2))
    print(json.dumps(summary))
    return 0
