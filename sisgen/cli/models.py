"""Model folders: ``sisgen train``, ``export``, ``convert`` and ``info``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import SisgenInputError
from .common import _add_label_source_arguments, _key_values, _open_source, _positive_int


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a config or preset."""
    import yaml

    from ..training import load_config, train

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
    from ..export import check_parity, export
    from ..models import load_model

    model = load_model(args.model)
    given = {"half": args.half, "dynamic": args.dynamic, "simplify": args.simplify,
             "batch": args.batch, "opset": args.opset, "uint8": args.uint8, "int8": args.int8}
    kwargs = {k: v for k, v in given.items() if v not in (None, False)}
    if args.source:
        if not args.int8:
            raise SisgenInputError("--source calibrates an int8 export: add --int8")
        kwargs["calibration"] = _calibration(args, model)
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
              f"({parity.bound} abs tolerance {parity.tol:.1e}, {parity.precision})")
        if not parity.passed:
            print(f"parity check FAILED: {parity}", file=sys.stderr)
            return 1
    return 0


def _calibration(args: argparse.Namespace, model: Any) -> Any:
    """int8 calibration batches from ``--calibration-maps`` maps spread over ``--source``."""
    from ..export.quantize import calibration_feeds, calibration_maps

    args.limit = args.calibration_maps  # ToyCity renders this many
    src = _open_source(args, tuple(model.resolution))
    return calibration_feeds(model, calibration_maps(src, args.calibration_maps))


#: Default output names inside the model folder, by format.
_EXPORT_NAMES = {"onnx": "model.onnx", "torch": "export", "tensorrt": "model.engine",
                 "aot": "model.pt2"}


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert an official checkpoint into a sisgen model folder."""
    from ..export.convert import convert

    options = _key_values(args.option, "--option")
    model = convert(args.arch, args.ckpt, args.dataset, **options)
    out = Path(args.out) if args.out else Path(f"{args.arch}_{args.dataset}")
    model.save(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {args.ckpt} -> {out} ({n / 1e6:.2f}M parameters)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a model's metadata."""
    from .. import load

    gen = load(args.model)
    info = {"model": gen.model_name, "backend": gen.backend, "resolution": gen.resolution,
            "noise": gen.noise_spec, "model_hash": gen.model_hash, "uses_edges": gen.uses_edges,
            "vocabulary": None if gen.vocabulary is None else gen.vocabulary.name,
            "classes": None if gen.vocabulary is None else gen.vocabulary.names}
    print(json.dumps(info, indent=2))
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen train``."""
    t = sub.add_parser("train", help="train a generator from a YAML config or preset")
    t.add_argument("--config", required=True, help="preset name or YAML file")
    t.add_argument("--out", help="run folder (overrides out_dir)")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("overrides", nargs="*", help="key=value overrides (model_args.ngf=32)")
    t.set_defaults(func=cmd_train)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen export``."""
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
    e.add_argument("--int8", action="store_true",
                   help="ONNX: int8 quantization for CPU onnxruntime (~2x faster with VNNI), "
                   "calibrated on random blob maps, or on --source maps")
    _add_label_source_arguments(e, "train", source_help="int8: calibrate on this label-map "
                                "source (cityscapes, coco, toycity, ...)")
    e.add_argument("--calibration-maps", type=_positive_int, default=64,
                   help="int8: maps of --source to calibrate on, spread over it (default 64)")
    e.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="compare with torch on random label maps and print max/mean abs "
                   "difference; exit 1 above tolerance (fp32 1e-4, fp16 2e-2 of the max, "
                   "int8 5e-2 of the mean; default: on for onnx)")
    e.set_defaults(func=cmd_export)


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen convert``."""
    c = sub.add_parser("convert", help="convert an official SPADE/CLADE/OASIS/pix2pixHD checkpoint")
    c.add_argument("arch", help="spade, clade, oasis or pix2pixhd")
    c.add_argument("--ckpt", required=True, help="the official generator file (.pth)")
    c.add_argument("--dataset", required=True, help="cityscapes, ade20k or coco_stuff")
    c.add_argument("--out", help="output model folder (default: ARCH_DATASET)")
    c.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="converter option (repeatable), e.g. use_vae=true")
    c.set_defaults(func=cmd_convert)


def add_info_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen info``."""
    i = sub.add_parser("info", help="describe a model folder or exported file")
    i.add_argument("model")
    i.set_defaults(func=cmd_info)
