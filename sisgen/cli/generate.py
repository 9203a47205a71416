"""``sisgen generate`` (with the ``--segmenter`` quality filter) and ``sisgen merge``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..errors import SisgenInputError
from .common import (
    _add_segmenter_input_arguments,
    _add_source_arguments,
    _non_negative_int,
    _open_source,
    _positive_float,
    _positive_int,
    _segmenter,
    _writers,
)

if TYPE_CHECKING:
    from ..filtering import QualityFilter
    from ..sources.base import Source


def cmd_generate(args: argparse.Namespace) -> int:
    """Synthesize a labeled dataset."""
    from .. import load
    from ..generate import generate

    gen = load(args.model, threads=args.threads, mode=args.mode, half=args.half,
               channels_last=args.channels_last)
    src = _open_source(args, gen.resolution, remap=args.remap)
    if args.map_cache:
        from ..sources import CachedSource

        src = CachedSource(src, args.map_cache,
                           size=gen.resolution if args.resize_first else None)
    kinds, writer_options = _writers(args)
    if "coco" in writer_options and args.coco_segmentation:
        writer_options["coco"]["segmentation"] = args.coco_segmentation
    quality_filter = _quality_filter(args, src)
    report = generate(
        gen, src, args.out, writers=kinds, recipe=args.recipe, seed=args.seed,
        samples_per_map=args.samples_per_map, batch_size=args.batch_size, limit=args.limit,
        writer_options=writer_options, shard=args.shard, resume=args.resume,
        retry_errors=args.retry_errors, workers=args.workers,
        write_workers=args.write_workers, write_threads=args.write_threads,
        quality_filter=quality_filter, plan=args.plan, bank=args.bank,
        resize_first=args.resize_first,
    )
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _quality_filter(args: argparse.Namespace, src: Source) -> QualityFilter | None:
    """The ``--segmenter`` quality filter of ``generate`` (``None`` without a segmenter)."""
    loss_args = [f for f, v in (("--reference-stats", args.reference_stats),
                                ("--max-ignored", args.max_ignored)) if v is not None]
    if not args.segmenter:
        if loss_args or args.filter_mode != "drop":
            raise SisgenInputError(f"{', '.join(loss_args) or '--filter-mode'} needs --segmenter")
        return None
    from ..filtering import QualityFilter

    reference = None
    if args.filter_mode == "loss":
        if args.reference_stats is None:
            raise SisgenInputError("--filter-mode loss needs --reference-stats (make one with "
                                   "`sisgen curate stats`)")
        from ..curation import ReferenceStats

        reference = ReferenceStats.load(args.reference_stats, vocabulary=src.vocabulary)
    elif args.reference_stats is not None:
        raise SisgenInputError("--reference-stats is for --filter-mode loss")
    min_miou = args.min_miou if args.min_miou is not None else (
        0.0 if args.filter_mode == "loss" else 0.5)
    return QualityFilter(_segmenter(args), min_miou=min_miou, mode=args.filter_mode,
                         reference=reference, factor=args.loss_factor,
                         max_ignored=args.max_ignored)


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge the shards of a generation run."""
    from ..generate import merge

    writers = args.writers.split(",") if args.writers else None
    path = merge(args.out, writers=writers, vocabulary=args.vocabulary)
    print(f"merged manifest: {path}")
    return 0


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen generate``."""
    g = sub.add_parser("generate", help="synthesize a labeled dataset")
    _add_source_arguments(g, split="train")
    g.add_argument("--remap", help="vocabulary remap table (e.g. coco_stuff->cityscapes) or YAML")
    g.add_argument("--recipe", help="edit recipe YAML")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--writers", default="cityscapes,coco", help="comma-separated writer kinds")
    g.add_argument("--coco-segmentation", choices=["rle", "polygon"],
                   help="thing annotations of the coco writer (default: rle)")
    g.add_argument("--image-format", choices=["png", "jpg"], help="image format of every writer")
    g.add_argument("--writer-option", action="append", default=[], metavar="WRITER.KEY=VALUE",
                   help="writer option, e.g. coco.panoptic=true (repeatable)")
    g.add_argument("--segmenter", help="TorchScript/ONNX segmenter for quality filtering")
    g.add_argument("--min-miou", type=float, help="quality filter: drop images below this "
                   "mIoU (default 0.5; 0 with --filter-mode loss)")
    g.add_argument("--filter-mode", choices=["drop", "ignore_disagreement", "loss"],
                   default="drop", help="drop images, or also write as ignore (255) the pixels "
                   "the segmenter disagrees with / whose loss exceeds --loss-factor x their "
                   "class's mean real loss (--reference-stats)")
    g.add_argument("--reference-stats", help="with --filter-mode loss: `sisgen curate stats` "
                   "file of the segmenter on real images")
    g.add_argument("--loss-factor", type=_positive_float, default=1.25,
                   help="--filter-mode loss threshold factor (FreeMask: 1.25)")
    g.add_argument("--max-ignored", type=float, help="ignoring modes: drop an image when more "
                   "than this fraction of its labelled pixels is ignored")
    _add_segmenter_input_arguments(g)
    g.add_argument("--plan", help="`sisgen curate plan` file: samples per map (replaces "
                   "--samples-per-map)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--samples-per-map", type=_positive_int, default=1)
    g.add_argument("--batch-size", type=_positive_int, default=8)
    g.add_argument("--limit", type=_positive_int, help="use only the first N label maps")
    g.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    g.add_argument("--workers", type=_non_negative_int, default=0,
                   help="worker processes preparing batches (load, edit, engine inputs)")
    g.add_argument("--write-workers", type=_non_negative_int, default=0,
                   help="worker processes encoding and writing files (0: in the main process)")
    g.add_argument("--write-threads", type=_positive_int, default=2,
                   help="with --write-workers 0: threads encoding and writing files")
    g.add_argument("--resize-first", action="store_true",
                   help="resize maps to the model's size before the edits (fast on large "
                   "maps; edits then act at the model's resolution)")
    g.add_argument("--map-cache", metavar="DIR",
                   help="keep decoded label maps in DIR (at the model's size with "
                   "--resize-first) so that later runs skip decoding them")
    g.add_argument("--bank", help="instance bank .npz for paste steps (default: built from "
                   "the first 500 maps of the source)")
    g.add_argument("--shard", help="k/n: process shard k of n (default: torchrun RANK/WORLD_SIZE)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out (skips samples its manifest records)")
    g.add_argument("--retry-errors", action="store_true",
                   help="with --resume: try the samples recorded as errors again")
    g.set_defaults(func=cmd_generate)


def add_merge_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen merge``."""
    m = sub.add_parser("merge", help="merge the shards of a generate run into one dataset")
    m.add_argument("--out", required=True, help="the run's output folder")
    m.add_argument("--vocabulary", help="the run's vocabulary (name or file; checked against "
                   "the run's record; default: the recorded one)")
    m.add_argument("--writers", help="comma-separated writer kinds (default: the run's)")
    m.set_defaults(func=cmd_merge)
