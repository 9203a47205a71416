"""``sisgen eval``: FID, mIoU, diversity and intra-class variation of a generator."""

from __future__ import annotations

import argparse
import json

from .common import (
    _add_segmenter_input_arguments,
    _add_source_arguments,
    _open_source,
    _positive_int,
    _segmenter_inputs,
)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a generator on a source's label maps; print the scores as JSON."""
    from .. import load
    from ..training.metrics import compute_metrics

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


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """``sisgen eval``."""
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
