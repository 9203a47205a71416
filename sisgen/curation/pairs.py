"""(image, label) pairs for the curation tools: real photos, images, or a synthetic pass.

Real photos come from the source, images from a callable, and a first synthetic pass from
a generator through the one sample path.

A *pair function* takes a list of map indices and returns ``(pairs, errors)``: ``pairs`` a
list of ``(map index, H×W×3 uint8 image, H×W class ids)`` for the maps it could read and
``errors`` a list of ``{"index", "file", "error"}`` records for the others, so a long pass
skips a bad map and reports it instead of dying. :func:`batched` groups the pairs into
same-size batches for the segmenter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import resize_nearest
from ..samples import SamplePath, run_engine
from ..sources import Source

if TYPE_CHECKING:
    from ..engines import Generator

Pair = tuple[int, np.ndarray, np.ndarray]
PairFunction = Callable[[Sequence[int]], tuple[list[Pair], list[dict[str, Any]]]]


def _resize_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area resize when shrinking, bilinear when enlarging (as training data does)."""
    import cv2

    if photo.shape[:2] == size:
        return photo
    shrink = size[0] < photo.shape[0]
    return cv2.resize(photo, (size[1], size[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def photo_pairs(source: Source, size: tuple[int, int] | None = None) -> PairFunction:
    """Pairs of each map with its real photo (``source.photo``).

    Args:
        source: A source with photos (ToyCity, Cityscapes with ``leftImg8bit``, ADE20K...).
        size: ``(H, W)`` to resize to (labels nearest, photos area/bilinear); default the
            maps' own size.
    """

    def pairs(indices: Sequence[int]) -> tuple[list[Pair], list[dict[str, Any]]]:
        out, errors = [], []
        for i in indices:
            lm = None
            try:
                lm = source.load(int(i))
                photo = source.photo(int(i))
                if photo is None:
                    raise SisgenInputError(
                        f"the {source.kind} source has no photo for this map; curate from a "
                        "first synthetic pass instead (generator= / --model)", lm.meta.get("file"))
                if photo.shape[:2] != lm.shape:
                    raise SisgenInputError(f"photo {photo.shape[:2]} and label map {lm.shape} "
                                           "differ in size", lm.meta.get("file"))
            except SisgenInputError as e:
                errors.append({"index": int(i), "file": e.path, "error": str(e)})
                continue
            label = lm.semantic
            if size is not None and tuple(size) != lm.shape:
                label = resize_nearest(label, tuple(size))
                photo = _resize_photo(photo, tuple(size))
            out.append((int(i), np.asarray(photo, np.uint8), label))
        return out, errors

    return pairs


def image_pairs(source: Source, images: Callable[[Sequence[int]], Sequence[np.ndarray]]
                ) -> PairFunction:
    """Pairs of each map with an image from ``images(indices)`` (one ``H×W×3`` per index).

    The map is resized (nearest) to its image's size.
    """

    def pairs(indices: Sequence[int]) -> tuple[list[Pair], list[dict[str, Any]]]:
        out, errors = [], []
        got = list(images(list(indices)))
        if len(got) != len(indices):
            raise ValueError(f"images() returned {len(got)} images for {len(indices)} maps")
        for i, image in zip(indices, got, strict=True):
            try:
                lm = source.load(int(i))
            except SisgenInputError as e:
                errors.append({"index": int(i), "file": e.path, "error": str(e)})
                continue
            image = np.asarray(image, np.uint8)
            out.append((int(i), image, resize_nearest(lm.semantic, image.shape[:2])))
        return out, errors

    return pairs


def synthetic_pairs(generator: Generator, source: Source, *, seed: int = 0,
                    recipe: Any = None) -> PairFunction:
    """Pairs of each map with the image ``generator`` makes of it: a first synthetic pass.

    Map ``i``'s image is sample ``i`` of the one sample path with run seed ``seed`` and
    one sample per map -- the image ``sisgen generate --seed SEED`` writes for that map --
    and its label is the edited map at the generator's resolution.
    """
    path = SamplePath(source, recipe, generator.resolution, seed=seed,
                      with_photo=generator.takes_photo,
                      input_spec=getattr(generator, "input_spec", None))

    def pairs(indices: Sequence[int]) -> tuple[list[Pair], list[dict[str, Any]]]:
        batch = path.prepare([int(i) for i in indices])
        errors = [{"index": int(e["source_index"]), "file": e.get("file"), "error": e["error"]}
                  for e in batch.errors]
        if not batch.samples:
            return [], errors
        images = run_engine(generator, batch)
        return ([(s.source_index, np.asarray(im), s.labelmap.semantic)
                 for s, im in zip(batch.samples, images, strict=True)], errors)

    return pairs


def batched(pairs: PairFunction, maps: int, batch_size: int, progress: bool = False,
            desc: str = "curate") -> Iterator[tuple[list[Pair], list[dict[str, Any]]]]:
    """Run ``pairs`` over maps ``0..maps-1`` in chunks; yield same-size batches and errors.

    Yields:
        ``(batch, errors)``: pairs of one image size (at most ``batch_size``) and the
        error records of the chunk they came from (each record once).
    """
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=maps, desc=desc, unit="map")
    try:
        for start in range(0, maps, batch_size):
            got, errors = pairs(range(start, min(start + batch_size, maps)))
            by_size: dict[tuple[int, ...], list[Pair]] = {}
            for p in got:
                by_size.setdefault(p[1].shape, []).append(p)
            groups = list(by_size.values()) or [[]]
            for k, group in enumerate(groups):
                yield group, errors if k == 0 else []
            if bar is not None:
                bar.update(min(batch_size, maps - start))
    finally:
        if bar is not None:
            bar.close()
