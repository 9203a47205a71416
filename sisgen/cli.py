"""The ``sisgen`` command line: quickstart, train, export, generate, eval, curate, edit, info.

Sub-commands import their heavy dependencies (training, export) only when they run;
``sisgen segmenter ...`` is handed whole to ``sisgen.training.segmenter.cli``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SisgenInputError

if TYPE_CHECKING:
    from .sources.base import Source


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 64x128, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError("height and width must be positive")
    return h, w


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


# --------------------------------------------------------------------------- commands
def cmd_quickstart(args: argparse.Namespace) -> int:
    """Run the quickstart."""
    from .quickstart import run_quickstart

    run_quickstart(out_dir=args.out, minutes=args.minutes, num_images=args.num_images,
                   size=args.size, seed=args.seed)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a config or preset."""
    import yaml

    from .training import load_config, train

    cfg = load_config(args.config, args.overrides)
    if args.out:
        cfg.out_dir = args.out
    if args.dry_run:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    model_dir = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 wrote the model
        print(f"model saved to {model_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a model folder through ``sisgen.export.export``; optionally check parity."""
    from .export import check_parity, export
    from .models import load_model

    model = load_model(args.model)
    given = {"half": args.half, "dynamic": args.dynamic, "simplify": args.simplify,
             "batch": args.batch, "opset": args.opset, "uint8": args.uint8}
    kwargs = {k: v for k, v in given.items() if v not in (None, False)}
    kwargs["file"] = Path(args.out) if args.out else Path(args.model) / _EXPORT_NAMES[args.format]
    check = args.format == "onnx" if args.check is None else args.check
    if args.format in ("onnx", "torch"):
        kwargs["check"] = False  # checked below, where a failure is an exit code
    path = export(model, args.format, **kwargs)
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else \
        path.stat().st_size
    print(f"exported {path} ({size / 1e6:.1f} MB)")
    if check:
        parity = check_parity(model, path, args.format, batch=args.batch or 2)
        print(f"max abs diff {parity.max_abs:.3e}  mean abs diff {parity.mean_abs:.3e}  "
              f"(tolerance {parity.tol:.1e}, {parity.precision})")
        if not parity.passed:
            print(f"parity check FAILED: {parity}", file=sys.stderr)
            return 1
    return 0


#: Default output names inside the model folder, by format.
_EXPORT_NAMES = {"onnx": "model.onnx", "torch": "export", "tensorrt": "model.engine",
                 "aot": "model.pt2"}


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert an official checkpoint into a sisgen model folder."""
    from .export.convert import convert

    options = _key_values(args.option, "--option")
    model = convert(args.arch, args.ckpt, args.dataset, **options)
    out = Path(args.out) if args.out else Path(f"{args.arch}_{args.dataset}")
    model.save(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {args.ckpt} -> {out} ({n / 1e6:.2f}M parameters)")
    return 0


def _key_values(items: list[str], what: str) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise SisgenInputError(f"{what} {item!r} is not key=value")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


#: Maps of a ToyCity source opened by the CLI without --limit (also what a run's automatic
#: instance bank reads, so a sample never depends on --limit).
TOYCITY_LENGTH = 1000
#: ToyCity's size for ``curate`` when neither --size, --model nor the segmenter give one.
TOYCITY_SIZE = (128, 256)


def _open_source(args: argparse.Namespace, resolution: tuple[int, int],
                 remap: str | None = None) -> Source:
    """The label-map source of ``generate`` / ``eval`` (ToyCity at the model's size)."""
    from . import sources

    src_kwargs = _key_values(args.source_option, "--source-option")
    if args.vocabulary:
        src_kwargs["vocabulary"] = args.vocabulary
    if args.source == "toycity":  # procedural: rendered at the model's size, as many as asked
        src_kwargs.setdefault("size", resolution)
        src_kwargs.setdefault("length", max(args.limit or 0, TOYCITY_LENGTH))
    return sources.open(args.source, args.root, split=args.split, remap=remap, **src_kwargs)


def _writers(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, object]]]:
    """``--writers``, ``--image-format`` and ``--writer-option`` as kinds and options."""
    kinds = args.writers.split(",")
    options: dict[str, dict[str, object]] = {k: {} for k in kinds}
    if args.image_format:
        for k in kinds:
            options[k]["image_format"] = args.image_format
    for key, value in _key_values(args.writer_option, "--writer-option").items():
        kind, _, opt = key.partition(".")
        if kind not in options or not opt:
            raise SisgenInputError(f"--writer-option {key}: expected WRITER.OPTION with WRITER "
                                   f"one of {', '.join(kinds)}")
        options[kind][opt] = value
    return kinds, options


def cmd_generate(args: argparse.Namespace) -> int:
    """Synthesize a labeled dataset."""
    from . import load
    from .generate import generate

    gen = load(args.model, threads=args.threads, mode=args.mode, half=args.half,
               channels_last=args.channels_last)
    src = _open_source(args, gen.resolution, remap=args.remap)
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


#: ImageNet statistics: a --segmenter's input normalisation when neither the arguments nor
#: the file's metadata sidecar give one.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _segmenter_inputs(args: argparse.Namespace) -> dict[str, tuple[float, ...] | None]:
    """``mean`` / ``std`` / ``input_range`` of ``--segmenter``.

    Given values win, then the file's metadata sidecar (``None`` here: the Segmenter reads
    it), then ImageNet statistics in [0, 1].
    """
    from .filtering import segmenter_metadata

    path = Path(args.segmenter)
    meta = segmenter_metadata(path) if path.is_file() else None
    out: dict[str, tuple[float, ...] | None] = {}
    for key, given, default in (("mean", args.seg_mean, IMAGENET_MEAN),
                                ("std", args.seg_std, IMAGENET_STD),
                                ("input_range", args.seg_input_range, (0.0, 1.0))):
        out[key] = tuple(given) if given is not None else (None if meta else default)
    return out


def _segmenter(args: argparse.Namespace):  # noqa: ANN202  (Segmenter, imported lazily)
    from .filtering import Segmenter

    return Segmenter(args.segmenter, batch_size=args.batch_size, **_segmenter_inputs(args))


def _quality_filter(args: argparse.Namespace, src: Source):  # noqa: ANN202
    """The ``--segmenter`` quality filter of ``generate`` (``None`` without a segmenter)."""
    loss_args = [f for f, v in (("--reference-stats", args.reference_stats),
                                ("--max-ignored", args.max_ignored)) if v is not None]
    if not args.segmenter:
        if loss_args or args.filter_mode != "drop":
            raise SisgenInputError(f"{', '.join(loss_args) or '--filter-mode'} needs --segmenter")
        return None
    from .filtering import QualityFilter

    reference = None
    if args.filter_mode == "loss":
        if args.reference_stats is None:
            raise SisgenInputError("--filter-mode loss needs --reference-stats (make one with "
                                   "`sisgen curate stats`)")
        from .curation import ReferenceStats

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
    from .generate import merge

    writers = args.writers.split(",") if args.writers else None
    path = merge(args.out, writers=writers, vocabulary=args.vocabulary)
    print(f"merged manifest: {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a generator on a source's label maps; print the scores as JSON."""
    from . import load
    from .training.metrics import compute_metrics

    gen = load(args.model, threads=args.threads, mode=args.mode, half=args.half,
               channels_last=args.channels_last)
    src = _open_source(args, gen.resolution)
    scores = compute_metrics(
        args.metrics, gen, src, limit=args.limit, batch_size=args.batch_size, seed=args.seed,
        device=args.device, inception_weights=args.inception_weights,
        fid_protocol=args.fid_protocol, fid_reference=args.fid_reference,
        fid_save_reference=args.save_fid_reference, segmenter=args.segmenter,
        **_eval_segmenter_inputs(args), remap=args.seg_remap,
        lpips_net=args.lpips_net, lpips_weights=args.lpips_weights,
        lpips_trunk=args.lpips_trunk, diversity_samples=args.diversity_samples,
        icv_reduction=args.icv_reduction)
    print(json.dumps({"model": str(args.model), "source": args.source, "split": args.split,
                      **scores}, indent=2))
    return 0


def _eval_segmenter_inputs(args: argparse.Namespace) -> dict[str, object]:
    if not args.segmenter:
        return {}
    given = _segmenter_inputs(args)
    return {"seg_mean": given["mean"], "seg_std": given["std"],
            "seg_input_range": given["input_range"]}


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
    from .curation import ReferenceStats, balance_plan, compute_reference_stats, hardness_plan

    segmenter = _segmenter(args) if args.segmenter else None
    generator = None
    if getattr(args, "model", None):
        from . import load

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


def run_segmenter_command(argv: list[str]) -> int:
    """``sisgen segmenter ...``: the compact segmenter's own command line.

    Handed whole to ``sisgen.training.segmenter.cli`` (``add_parser`` / ``run``), imported
    only now, so that ``sisgen`` itself never imports training code.
    """
    try:
        from .training.segmenter import cli as segmenter_cli
    except ImportError as e:
        raise SisgenInputError(f"the segmenter commands are not available ({e})") from None
    parser = argparse.ArgumentParser(prog="sisgen")
    sub = parser.add_subparsers(dest="command", required=True)
    segmenter_cli.add_parser(sub)
    names = list(sub.choices)
    name = "segmenter" if "segmenter" in names or len(names) != 1 else names[0]
    return int(segmenter_cli.run(parser.parse_args([name, *argv])) or 0)


def cmd_edit(args: argparse.Namespace) -> int:
    """Serve the scene editor (a local web app) on a model and a source."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise SisgenInputError(f"the scene editor needs {' and '.join(missing)}: "
                               "pip install 'sisgen[editor]'")
    from . import load
    from .editor.server import serve
    from .editor.session import EditorSession

    gen = load(args.model, threads=args.threads)
    src = _open_source(args, gen.resolution, remap=args.remap)
    kinds, writer_options = _writers(args)
    reproduce = {"model": args.model, "root": args.root, "split": args.split,
                 "vocabulary": args.vocabulary, "remap": args.remap,
                 "source_options": args.source_option}
    session = EditorSession(gen, src, args.out, writers=kinds, writer_options=writer_options,
                            seed=args.seed, bank_maps=args.bank_maps, reproduce=reproduce)
    serve(session, host=args.host, port=args.port)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a model's metadata."""
    from . import load

    gen = load(args.model)
    info = {"model": gen.model_name, "backend": gen.backend, "resolution": gen.resolution,
            "noise": gen.noise_spec, "model_hash": gen.model_hash, "uses_edges": gen.uses_edges,
            "vocabulary": None if gen.vocabulary is None else gen.vocabulary.name,
            "classes": None if gen.vocabulary is None else gen.vocabulary.names}
    print(json.dumps(info, indent=2))
    return 0


# ----------------------------------------------------------------------------- parser
def _add_source_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    """The model and label-map source options shared by ``generate`` and ``eval``."""
    parser.add_argument("--model", required=True, help="model folder or .onnx file")
    _add_label_source_arguments(parser, split)
    parser.add_argument("--mode", choices=["eager", "compile", "cudagraphs"], default="eager",
                        help="torch backend mode for model folders (cudagraphs: CUDA only)")
    parser.add_argument("--half", action="store_true", help="model folders: autocast to "
                        "float16 on CUDA / bfloat16 on the CPU (exported files keep their "
                        "precision)")
    parser.add_argument("--channels-last", action="store_true",
                        help="model folders: NHWC weights and inputs (faster on tensor cores)")


def _add_label_source_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    """The label-map source options (``--source``, ``--root``, ...)."""
    parser.add_argument("--source", required=True, help="source kind (cityscapes, coco, ...)")
    parser.add_argument("--root", help="dataset root")
    parser.add_argument("--split", default=split)
    parser.add_argument("--vocabulary", help="vocabulary for folder sources")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                        help="source option, e.g. annotations=polygons (repeatable)")


def _add_segmenter_input_arguments(parser: argparse.ArgumentParser) -> None:
    """How images are normalized for a ``--segmenter``.

    Given values win, then the file's metadata sidecar (``<file>.json``), then ImageNet
    statistics in [0, 1].
    """
    parser.add_argument("--seg-mean", type=float, nargs=3, help="default: the segmenter's "
                        "metadata, else ImageNet's 0.485 0.456 0.406")
    parser.add_argument("--seg-std", type=float, nargs=3, help="default: the segmenter's "
                        "metadata, else ImageNet's 0.229 0.224 0.225")
    parser.add_argument("--seg-input-range", type=float, nargs=2,
                        help="what uint8 0..255 maps to (default: metadata, else 0 1)")


def _add_curate_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen curate stats|plan``."""
    cur = sub.add_parser("curate", help="curation: a segmenter's reference statistics, "
                         "hardness / class-balanced plans")
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
        p.add_argument("--size", type=_size, help="score at HxW (default: the model's "
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sisgen`` command."""
    p = argparse.ArgumentParser(prog="sisgen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="ToyCity data -> train -> ONNX -> labeled dataset")
    q.add_argument("--out", default="runs/quickstart", help="output folder")
    q.add_argument("--minutes", type=_positive_float, default=7.0, help="training time budget")
    q.add_argument("--num-images", type=_positive_int, default=200, help="images to generate")
    q.add_argument("--size", type=_size, default=(64, 128), help="resolution HxW (x32)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_quickstart)

    t = sub.add_parser("train", help="train a generator from a YAML config or preset")
    t.add_argument("--config", required=True, help="preset name or YAML file")
    t.add_argument("--out", help="run folder (overrides out_dir)")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("overrides", nargs="*", help="key=value overrides (model_args.ngf=32)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="export a trained model (onnx, torch, tensorrt, aot)",
                       description="Arguments a format does not accept are an error that "
                       "lists what it accepts (sisgen.export.FORMAT_ARGS).")
    e.add_argument("format", choices=["onnx", "torch", "tensorrt", "aot"], help="target format")
    e.add_argument("--model", required=True, help="model folder (config.json + safetensors)")
    e.add_argument("--out", help="output file or folder (default: inside MODEL)")
    e.add_argument("--half", action="store_true", help="fp16 (normalizations stay fp32)")
    e.add_argument("--dynamic", action="store_true",
                   help="dynamic H and W (ONNX; where the architecture allows)")
    e.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    e.add_argument("--batch", type=_positive_int,
                   help="batch (ONNX: of the parity check; the batch axis stays dynamic)")
    e.add_argument("--opset", type=int, choices=range(17, 22), metavar="{17..21}",
                   help="ONNX opset (default 18)")
    e.add_argument("--uint8", action="store_true", help="emit uint8 NHWC images")
    e.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="compare with torch on random label maps and print max/mean abs "
                   "difference; exit 1 above tolerance (fp32 1e-4, fp16 2e-2; default: on "
                   "for onnx)")
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("convert", help="convert an official SPADE/CLADE/OASIS/pix2pixHD checkpoint")
    c.add_argument("arch", help="spade, clade, oasis or pix2pixhd")
    c.add_argument("--ckpt", required=True, help="the official generator file (.pth)")
    c.add_argument("--dataset", required=True, help="cityscapes, ade20k or coco_stuff")
    c.add_argument("--out", help="output model folder (default: ARCH_DATASET)")
    c.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="converter option (repeatable), e.g. use_vae=true")
    c.set_defaults(func=cmd_convert)

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
    g.add_argument("--bank", help="instance bank .npz for paste steps (default: built from "
                   "the first 500 maps of the source)")
    g.add_argument("--shard", help="k/n: process shard k of n (default: torchrun RANK/WORLD_SIZE)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out (skips samples its manifest records)")
    g.add_argument("--retry-errors", action="store_true",
                   help="with --resume: try the samples recorded as errors again")
    g.set_defaults(func=cmd_generate)

    _add_curate_parser(sub)
    sub.add_parser("segmenter", add_help=False,
                   help="train, score and export sisgen's compact segmenter "
                   "(sisgen segmenter --help)")

    m = sub.add_parser("merge", help="merge the shards of a generate run into one dataset")
    m.add_argument("--out", required=True, help="the run's output folder")
    m.add_argument("--vocabulary", help="the run's vocabulary (name or file; checked against "
                   "the run's record; default: the recorded one)")
    m.add_argument("--writers", help="comma-separated writer kinds (default: the run's)")
    m.set_defaults(func=cmd_merge)

    v = sub.add_parser("eval", help="FID / mIoU / diversity / intra-class variation of a model")
    _add_source_arguments(v, split="val")
    v.add_argument("--metrics", default="fid,miou", help="comma-separated: fid, miou, "
                   "diversity, icv")
    v.add_argument("--limit", type=_positive_int, help="use only the first N label maps")
    v.add_argument("--batch-size", type=_positive_int, default=8)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu", help="device of the metric networks")
    v.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    v.add_argument("--inception-weights", help="FID Inception file "
                   "(pt_inception-2015-12-05-6726825d.pth)")
    v.add_argument("--fid-protocol", choices=["pytorch-fid", "torch-fidelity"],
                   default="pytorch-fid", help="FID input resize/normalization")
    v.add_argument("--fid-reference", help="precomputed real statistics (.npz, mu/sigma)")
    v.add_argument("--save-fid-reference", help="write the real statistics to this .npz")
    v.add_argument("--segmenter", help="TorchScript/ONNX segmenter for miou")
    v.add_argument("--seg-remap", help="remap the label maps into the segmenter's ids, "
                   "e.g. cityscapes->cityscapes_trainid")
    _add_segmenter_input_arguments(v)
    v.add_argument("--lpips-net", choices=["vgg", "alex"], default="vgg")
    v.add_argument("--lpips-weights", help="lpips lin weights (the lpips package's vgg.pth)")
    v.add_argument("--lpips-trunk", help="torchvision state dict of the LPIPS trunk")
    v.add_argument("--diversity-samples", type=int, default=4,
                   help="renders per label map for diversity")
    v.add_argument("--icv-reduction", choices=["present", "vasis"], default="present")
    v.set_defaults(func=cmd_eval)

    ed = sub.add_parser("edit", help="scene editor: paint label maps, see the image, save "
                        "labeled samples (a local web app)")
    _add_source_arguments(ed, split="train")
    ed.add_argument("--remap", help="vocabulary remap table (e.g. coco_stuff->cityscapes) or YAML")
    ed.add_argument("--out", default="runs/edit", help="output folder of saved samples")
    ed.add_argument("--writers", default="cityscapes,coco", help="comma-separated writer kinds")
    ed.add_argument("--image-format", choices=["png", "jpg"], help="image format of every writer")
    ed.add_argument("--writer-option", action="append", default=[], metavar="WRITER.KEY=VALUE",
                    help="writer option, e.g. coco.panoptic=true (repeatable)")
    ed.add_argument("--seed", type=int, default=0, help="initial run seed")
    ed.add_argument("--bank-maps", type=_positive_int, default=500,
                    help="maps the instance bank for pasting is built from")
    ed.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default loopback; 0.0.0.0 exposes the editor "
                    "to the network, with a warning)")
    ed.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    ed.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    ed.set_defaults(func=cmd_edit, limit=None)  # every map of the source (ToyCity: rendered)

    i = sub.add_parser("info", help="describe a model folder or exported file")
    i.add_argument("model")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sisgen`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["segmenter"]:
            return run_segmenter_command(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except SisgenInputError as e:
        print(f"sisgen: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
