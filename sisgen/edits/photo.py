"""Photo editing: re-synthesize only what the label-map edits changed (SESAME).

Models that take a photo and a hole mask (``image`` and ``mask`` inputs, SESAME) edit a real
photo rather than render a whole frame: the pixels the edits left alone keep the photo, the
rest (removed or pasted objects, relabelled regions, pixels that geometric edits brought in)
is synthesized. To know which photo pixel every edited pixel comes from, the source map gets
``meta["source_pixel"]``, an int32 map of flat photo indices that every geometric edit moves
along with the labels (new pixels: -1). After the edits, :func:`attach_photo` turns it into
the aligned photo (``meta["photo"]``) and the hole (``meta["hole"]``) that
``Generator.prepare`` feeds the engine.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..labelmap import HOLE_KEY, PHOTO_KEY, SOURCE_PIXEL_KEY, LabelMap

__all__ = ["HOLE_KEY", "PHOTO_KEY", "SOURCE_PIXEL_KEY", "attach_photo", "track_source_pixels"]


def track_source_pixels(labelmap: LabelMap) -> LabelMap:
    """A copy of ``labelmap`` whose ``meta`` records each pixel's index in its photo."""
    out = labelmap.copy()
    h, w = labelmap.shape
    out.meta[SOURCE_PIXEL_KEY] = np.arange(h * w, dtype=np.int32).reshape(h, w)
    return out


def attach_photo(edited: LabelMap, original: LabelMap, photo: np.ndarray,
                 grow: int | None = None, shape: str = "box") -> LabelMap:
    """Align ``photo`` to ``edited`` and mark what must be synthesized.

    A pixel joins the hole when the edits created it (no source pixel) or when its class or
    instance differs from the source pixel's in ``original``; the hole then grows by
    ``grow`` pixels (default ``max(2, min(H, W) // 64)``) so new objects get room for their
    boundary and shadows, and with ``shape="box"`` every connected part of it becomes its
    bounding box (SESAME trains on rectangular holes: object boxes and random boxes).

    Args:
        edited: The edited map (with ``meta["source_pixel"]`` from
            :func:`track_source_pixels`, moved by the edits).
        original: The map before the edits (same size as ``photo``).
        photo: ``H×W×3`` uint8 photo of ``original``.
        grow: Hole dilation in pixels.
        shape: ``box`` (bounding boxes of the grown changes) or ``region`` (the grown
            changed pixels themselves).

    Returns:
        ``edited`` with ``meta["photo"]`` (``edited``'s size, hole pixels black) and
        ``meta["hole"]``, and without the index map.
    """
    h, w = original.shape
    if photo.shape[:2] != (h, w):
        photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    out = edited.copy()
    idx = np.asarray(out.meta.pop(SOURCE_PIXEL_KEY))
    if idx.shape != edited.shape:
        raise ValueError(f"source-pixel map {idx.shape} does not match the edited map "
                         f"{edited.shape}")
    born = idx < 0
    flat = np.where(born, 0, idx)
    hole = born | (original.semantic.reshape(-1)[flat] != edited.semantic)
    if original.instance is not None and edited.instance is not None:
        hole |= original.instance.reshape(-1)[flat] != edited.instance
    if shape not in ("box", "region"):
        raise ValueError(f"hole shape must be 'box' or 'region', got {shape!r}")
    grow = max(2, min(edited.shape) // 64) if grow is None else int(grow)
    if grow > 0 and hole.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        hole = cv2.dilate(hole.astype(np.uint8), kernel).astype(bool)
    if shape == "box" and hole.any():
        n, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
        for x, y, bw, bh, _ in stats[1:n]:
            hole[y:y + bh, x:x + bw] = True
    aligned = photo.reshape(-1, 3)[flat.reshape(-1)].reshape(*edited.shape, 3)
    aligned[hole] = 0
    out.meta[PHOTO_KEY], out.meta[HOLE_KEY] = aligned, hole
    return out
