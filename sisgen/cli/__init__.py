"""The ``sisgen`` command line: quickstart, train, export, generate, eval, curate, edit, info.

Sub-commands import their heavy dependencies (training, export) only when they run;
``sisgen segmenter ...`` is handed whole to ``sisgen.training.segmenter.cli``.

One module per command family, each with its ``cmd_*`` functions and ``add_*_parser``
builders: :mod:`.generate` (generate, merge), :mod:`.curate` (curate, the segmenter
hand-over), :mod:`.models` (train, export, convert, info), :mod:`.evaluate` (eval) and
:mod:`.apps` (quickstart, edit); :mod:`.common` holds what they share. ``python -m
sisgen.cli`` runs :func:`main`.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import SisgenInputError
from .apps import add_edit_parser, add_quickstart_parser, cmd_edit, cmd_quickstart
from .common import TOYCITY_LENGTH, TOYCITY_SIZE
from .curate import add_curate_parser, add_segmenter_parser, cmd_curate, run_segmenter_command
from .evaluate import add_eval_parser, cmd_eval
from .generate import add_generate_parser, add_merge_parser, cmd_generate, cmd_merge
from .models import (
    add_convert_parser,
    add_export_parser,
    add_info_parser,
    add_train_parser,
    cmd_convert,
    cmd_export,
    cmd_info,
    cmd_train,
)

__all__ = [
    "TOYCITY_LENGTH", "TOYCITY_SIZE", "build_parser", "cmd_convert", "cmd_curate", "cmd_edit",
    "cmd_eval", "cmd_export", "cmd_generate", "cmd_info", "cmd_merge", "cmd_quickstart",
    "cmd_train", "main", "run_segmenter_command",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sisgen`` command."""
    p = argparse.ArgumentParser(prog="sisgen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add in (add_quickstart_parser, add_train_parser, add_export_parser,
                add_convert_parser, add_generate_parser, add_curate_parser,
                add_segmenter_parser, add_merge_parser, add_eval_parser, add_edit_parser,
                add_info_parser):  # the order of `sisgen --help`
        add(sub)
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
