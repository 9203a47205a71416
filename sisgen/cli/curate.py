"""``sisgen curate stats|plan|paste`` and the hand-over of ``sisgen segmenter ...``."""

from __future__ import annotations

import argparse
import json

from ..argtypes import size_arg
from ..errors import SisgenInputError
from ..io import write_text
from .common import (
    TOYCITY_SIZE,
    _add_label_source_arguments,
    _add_segmenter_input_arguments,
    _non_negative_int,
    _open_source,
    _positive_int,
    _segmenter,
)


def _curation_size(args: argparse.Namespace, segmenter: object = None,
                   generator: object = None) -> tuple[int, int] | None:
    """``--size``, else the generator's resolution, else the segmenter's input size."""
    if args.size is not None:
        return args.size
    for holder, attr in ((generator, "resolution"), (segmenter, "input_size")):
        value = getattr(holder, attr, None)
        if value is not None:
            return int(value[0]), int(value[1])
    return None


def cmd_curate(args: argparse.Namespace) -> int:
    """``curate stats``: reference statistics; ``curate plan``: a plan file."""
    from ..curation import ReferenceStats, balance_plan, compute_reference_stats, hardness_plan

    segmenter = _segmenter(args) if args.segmenter else None
    generator = None
    if getattr(args, "model", None):
        from .. import load

        generator = load(args.model, threads=args.threads)
    size = _curation_size(args, segmenter, generator)
    src = _open_source(args, size or TOYCITY_SIZE)
    if args.curate == "stats":
        if segmenter is None:
            raise SisgenInputError("curate stats needs --segmenter")
        stats = compute_reference_stats(segmenter, src, limit=args.limit, size=size,
                                        batch_size=args.batch_size, progress=True)
        stats.save(args.out)
        summary = {"out": args.out, "images": stats.images, "pixels": int(stats.pixels.sum()),
                   "skipped": len(stats.skipped), "mean_loss": stats.mean_loss,
                   "class_loss": {c["name"]: c["mean_loss"] for c in stats.to_dict()["classes"]}}
        print(json.dumps(summary, indent=2))
        return 0
    plan = None
    if "hardness" in args.mode:
        if segmenter is None:
            raise SisgenInputError(f"--mode {args.mode} needs --segmenter")
        stats = (None if args.stats is None
                 else ReferenceStats.load(args.stats, vocabulary=src.vocabulary))
        plan = hardness_plan(segmenter, src, args.max_samples, generator=generator,
                             seed=args.seed, recipe=args.recipe, stats=stats, limit=args.limit,
                             size=size, batch_size=args.batch_size, progress=True)
    if "balance" in args.mode:
        plan = balance_plan(src, total=args.total, max_samples=args.max_samples,
                            min_samples=args.min_samples, base=plan, limit=args.limit,
                            progress=True)
    assert plan is not None
    plan.save(args.out)
    summary = {"out": args.out, "mode": plan.mode, "maps": plan.maps, "total": plan.total,
               "sha256": plan.digest()}
    for key in ("counts", "pixel_share", "skipped"):
        if key in plan.report:
            summary[key] = plan.report[key]
    print(json.dumps(summary, indent=2))
    return 0


def cmd_curate_paste(args: argparse.Namespace) -> int:
    """``curate paste``: a recipe of paste steps for the classes below their target share."""
    from ..curation import paste_balance_recipe
    from ..instance_bank import InstanceBank
    from ..samples import automatic_bank

    src = _open_source(args, args.size or TOYCITY_SIZE)
    bank = InstanceBank.load(args.bank) if args.bank else automatic_bank(src)[0]
    on = [c.strip() for c in args.on.split(",") if c.strip()] if args.on else None
    recipe, report = paste_balance_recipe(
        src, bank, target=args.target, max_per_map=args.max_per_map, on=on,
        perspective=args.perspective, bank_file=args.bank, limit=args.limit,
        trial_maps=args.trial_maps, progress=True)
    write_text(args.out, recipe.to_yaml())
    if args.report:
        write_text(args.report, json.dumps(report, indent=1) + "\n")
    print(json.dumps({"out": args.out, "steps": recipe.to_list(), **report}, indent=2))
    return 0


def run_segmenter_command(argv: list[str]) -> int:
    """``sisgen segmenter ...``: the compact segmenter's own command line.

    Handed whole to ``sisgen.training.segmenter.cli`` (``add_parser`` / ``run``), imported
    only now, so that ``sisgen`` itself never imports training code.
    """
    try:
        from ..training.segmenter import cli as segmenter_cli
    except ImportError as e:
        raise SisgenInputError(f"the segmenter commands are not available ({e})") from None
    parser = argparse.ArgumentParser(prog="sisgen")
    sub = parser.add_subparsers(dest="command", required=True)
    segmenter_cli.add_parser(sub)
    names = list(sub.choices)
    name = "segmenter" if "segmenter" in names or len(names) != 1 else names[0]
    return int(segmenter_cli.run(parser.parse_args([name, *argv])) or 0)


def add_curate_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen curate stats|plan|paste``."""
    cur = sub.add_parser("curate", help="curation: a segmenter's reference statistics, "
                         "hardness / class-balanced plans, paste recipes for rare classes")
    csub = cur.add_subparsers(dest="curate", required=True)
    st = csub.add_parser("stats", help="per-class mean loss of a segmenter on real photos")
    pl = csub.add_parser("plan", help="a plan file: samples per label map")
    pl.add_argument("--mode", required=True,
                    choices=["hardness", "balance", "hardness+balance"])
    for p in (st, pl):
        _add_label_source_arguments(p, split="train")
        p.add_argument("--segmenter", required=p is st,
                       help="TorchScript/ONNX segmenter (metadata sidecar <file>.json read)")
        _add_segmenter_input_arguments(p)
        p.add_argument("--out", required=True, help="output JSON file")
        p.add_argument("--limit", type=_positive_int, help="use only the first N label maps")
        p.add_argument("--size", type=size_arg, help="score at HxW (default: the model's "
                       "resolution, else the segmenter's input size, else the maps' own)")
        p.add_argument("--batch-size", type=_positive_int, default=8)
    pl.add_argument("--max-samples", type=_positive_int, default=4,
                    help="most samples of one map (K of the hardness rank rule)")
    pl.add_argument("--min-samples", type=_non_negative_int, default=1,
                    help="balance: fewest samples of a map")
    pl.add_argument("--total", type=_positive_int, help="balance: samples in all (default: "
                    "the hardness plan's total, else the sum of the maps' repeat factors)")
    pl.add_argument("--stats", help="hardness: reference statistics; each pixel's loss is "
                    "divided by its class's mean real loss")
    pl.add_argument("--model", help="hardness without photos: score a first synthetic pass "
                    "of this generator (sample 0 of each map, --seed, --recipe)")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--recipe", help="edit recipe of the synthetic pass")
    pl.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    for p in (st, pl):
        p.set_defaults(func=cmd_curate)
    pa = csub.add_parser("paste", help="a recipe of paste steps that raises the pixel share "
                         "of classes below their target (an instance bank's classes)")
    _add_label_source_arguments(pa, split="train")
    pa.add_argument("--out", required=True, help="output recipe (YAML) for generate --recipe")
    pa.add_argument("--report", help="also write the report (shares before/target/after) here")
    pa.add_argument("--bank", help="instance bank .npz (written into the steps; default: the "
                    "bank generate builds from the source's first maps)")
    pa.add_argument("--target", default="sqrt", choices=["sqrt", "uniform"],
                    help="target pixel shares: sqrt of the current ones, or uniform")
    pa.add_argument("--max-per-map", type=_positive_int, default=3,
                    help="most instances of one class pasted into a map")
    pa.add_argument("--on", help="classes a pasted instance stands on, comma-separated "
                    "(e.g. road,sidewalk)")
    pa.add_argument("--perspective", action="store_true",
                    help="scale pasted instances by their landing row")
    pa.add_argument("--limit", type=_positive_int, help="use only the first N label maps")
    pa.add_argument("--trial-maps", type=_positive_int, default=50,
                    help="maps of the trial paste that measures pixels per instance")
    pa.add_argument("--size", type=size_arg, help="ToyCity map size HxW (default 128x256)")
    pa.set_defaults(func=cmd_curate_paste)


def add_segmenter_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen segmenter``: listed here, parsed by :func:`run_segmenter_command`."""
    sub.add_parser("segmenter", add_help=False,
                   help="train, score and export sisgen's compact segmenter "
                   "(sisgen segmenter --help)")
