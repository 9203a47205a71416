"""``sisgen quickstart`` (ToyCity end to end) and ``sisgen edit`` (the scene editor)."""

from __future__ import annotations

import argparse

from ..argtypes import size_arg
from ..errors import SisgenInputError
from .common import (
    _add_source_arguments,
    _open_source,
    _positive_float,
    _positive_int,
    _writers,
)


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Run the quickstart."""
    from ..quickstart import run_quickstart

    run_quickstart(out_dir=args.out, minutes=args.minutes, num_images=args.num_images,
                   size=args.size, seed=args.seed)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Serve the scene editor (a local web app) on a model and a source."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise SisgenInputError(f"the scene editor needs {' and '.join(missing)}: "
                               "pip install 'sisgen[editor]'")
    from .. import load
    from ..editor.server import serve
    from ..editor.session import EditorSession

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


def add_quickstart_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen quickstart``."""
    q = sub.add_parser("quickstart", help="ToyCity data -> train -> ONNX -> labeled dataset")
    q.add_argument("--out", default="runs/quickstart", help="output folder")
    q.add_argument("--minutes", type=_positive_float, default=7.0, help="training time budget")
    q.add_argument("--num-images", type=_positive_int, default=200, help="images to generate")
    q.add_argument("--size", type=size_arg, default=(64, 128), help="resolution HxW (x32)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_quickstart)


def add_edit_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen edit``."""
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
