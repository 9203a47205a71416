"""What several ``sisgen`` commands share: argument types, source, writer and segmenter options.

The names keep their leading underscore: they are the command line's own helpers, not API
(argparse also prints a type function's name in its errors: ``invalid _positive_int
value``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import SisgenInputError

if TYPE_CHECKING:
    from ..segmenter import Segmenter
    from ..sources.base import Source


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
    from .. import sources

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


def _segmenter_inputs(args: argparse.Namespace) -> dict[str, tuple[float, ...] | None]:
    """``mean`` / ``std`` / ``input_range`` of ``--segmenter``.

    Given values win, then the file's metadata sidecar (``None`` here: the Segmenter reads
    it), then ImageNet statistics in [0, 1] (:func:`sisgen.segmenter.segmenter_inputs`).
    """
    from ..segmenter import segmenter_inputs

    return segmenter_inputs(args.segmenter, args.seg_mean, args.seg_std, args.seg_input_range)


def _segmenter(args: argparse.Namespace) -> Segmenter:
    """The ``--segmenter`` file as a :class:`~sisgen.segmenter.Segmenter` (imported lazily)."""
    from ..segmenter import Segmenter

    return Segmenter(args.segmenter, batch_size=args.batch_size, **_segmenter_inputs(args))


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


def _add_label_source_arguments(parser: argparse.ArgumentParser, split: str,
                                source_help: str | None = None) -> None:
    """The label-map source options (``--source``, ``--root``, ...).

    ``source_help`` makes ``--source`` optional, with that help text.
    """
    parser.add_argument("--source", required=source_help is None,
                        help=source_help or "source kind (cityscapes, coco, ...)")
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
