"""``argparse`` types shared by the command lines of sisgen and of its training tools."""

from __future__ import annotations

import argparse


def size_arg(text: str) -> tuple[int, int]:
    """``"64x128"`` -> ``(64, 128)``: a positive height and width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 64x128, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError("height and width must be positive")
    return h, w
