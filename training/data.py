"""Paired (label map, photo) training datasets from any source, with the papers' augmentations.

:func:`build_dataset` opens a source (``cityscapes``, ``coco``, ``coco_stuff``, ``ade20k``,
``folder``, ``toycity``; see :mod:`sisgen.sources`) and wraps it in a :class:`PairedDataset`,
whose items are the compact model inputs plus the photo::

    labels     int64   [H, W]     class ids, 255 = ignore
    instances  int64   [H, W]     instance ids as the source gives them, 0 = none
    edges      float32 [1, H, W]  instance boundaries, computed after the geometric augmentation
    image      float32 [3, H, W]  the photo in [-1, 1]

Augmentation (the ``preprocess_mode`` of SPADE / CLADE / OASIS, ``resize_or_crop`` of
pix2pixHD), given as ``{"mode": ..., "load_size": ..., "crop_size": ..., "flip": ...}``:

* ``fixed`` -- resize to the training size ``(H, W)``; no crop. The default when no augment
  is given (with ``flip``): what the SPADE Cityscapes preset does (``fixed``, aspect 2).
* ``resize`` -- the same resize to the training size (``load_size`` may only repeat it).
* ``resize_and_crop`` -- resize to ``load_size`` (an int is a square) and take a random
  crop of the training size. SPADE / OASIS on ADE20K and COCO-Stuff:
  ``{"mode": "resize_and_crop", "load_size": 286, "crop_size": 256, "flip": true}``.
* ``scale_width_and_crop`` -- scale the width to ``load_size`` keeping the aspect, then a
  random crop; when the scaled map is smaller than the crop it is scaled up to cover it.
* ``scale_shortside_and_crop`` -- scale the short side to ``load_size``, then a random crop.

``crop_size`` (an int is a square) must equal the training size when given. ``flip``
(default true) mirrors labels, instances and photo horizontally with probability 1/2.

Interpolation: label and instance maps are always resized nearest-neighbour with
pixel-centre sampling (source pixel ``floor((x + 0.5) * src / dst)``, index for index what
PIL's ``NEAREST`` in the official pipelines picks), so ids are never blended or invented
and the maps stay aligned with the photo. Photos use OpenCV's ``INTER_AREA`` when
shrinking -- anti-aliased, like the PIL ``BICUBIC`` resize of the official pipelines, which
widens its filter when shrinking (OpenCV's ``INTER_CUBIC`` would alias) -- and
``INTER_CUBIC`` (bicubic) when enlarging.

Determinism: the crop offset and the flip of item ``index`` in epoch ``epoch`` come from
``numpy.random.default_rng([seed, epoch, index])`` and nothing else -- no global RNG is
read or advanced -- so DataLoader workers, DDP ranks and a resumed run all produce the same
item. Call :meth:`PairedDataset.set_epoch` before each epoch's DataLoader is iterated
(worker processes copy the dataset when they start).

Validation (:meth:`PairedDataset.validate`, run at construction unless ``validate=False``)
reads every label map (or the first ``limit``) with its photo and raises
:class:`~sisgen.errors.SisgenInputError` naming the file on the first bad one: JPEG label
maps (by suffix and by content), colour-coded RGB/RGBA or palette PNGs instead of
single-channel ids (the message says how to convert; see :func:`palette_to_ids`), ids
outside the vocabulary, a missing photo, and a photo whose aspect ratio differs from the
label map's. Photos whose size differs only slightly (within 1 % or one pixel of the label
map's aspect) or by a uniform scale are resized to match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sisgen import sources
from sisgen.errors import SisgenInputError
from sisgen.labelmap import IGNORE_ID, LabelMap, instance_edges, nearest_indices
from sisgen.sources import Source
from sisgen.sources.base import SOURCES
from sisgen.vocab import Vocabulary

MODES = ("fixed", "resize", "resize_and_crop", "scale_width_and_crop",
         "scale_shortside_and_crop")
_CROP_MODES = ("resize_and_crop", "scale_width_and_crop", "scale_shortside_and_crop")
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ASPECT_TOLERANCE = 0.01  # relative; see _check_photo_size
_PROGRESS_ABOVE = 1000


# --------------------------------------------------------------------------- augmentation
def _pair(value: Any, what: str) -> tuple[int, int]:
    """An int (a square) or ``[h, w]`` as a positive ``(h, w)``."""
    if isinstance(value, bool):
        raise SisgenInputError(f"augment {what} must be an int or [height, width], got {value!r}")
    if isinstance(value, (int, np.integer)):
        hw = (int(value), int(value))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        hw = (int(value[0]), int(value[1]))
    else:
        raise SisgenInputError(f"augment {what} must be an int or [height, width], got {value!r}")
    if min(hw) < 1:
        raise SisgenInputError(f"augment {what} must be positive, got {value!r}")
    return hw


@dataclass(frozen=True)
class Geometry:
    """Where one item's pixels come from: a resize, a crop of it and an optional flip.

    Attributes:
        resized: ``(h, w)`` the full map is resized to.
        offset: ``(y, x)`` of the crop's top-left corner in the resized map.
        size: ``(H, W)`` of the crop (the training size).
        flip: Mirror the crop horizontally.
    """

    resized: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]
    flip: bool

    def label_indices(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Source row and column of every output pixel, for a map of ``shape``."""
        rows = nearest_indices(shape[0], self.resized[0])
        cols = nearest_indices(shape[1], self.resized[1])
        y, x = self.offset
        h, w = self.size
        rows, cols = rows[y:y + h], cols[x:x + w]
        return rows, (cols[::-1] if self.flip else cols)

    def apply_to_labels(self, maps: list[np.ndarray]) -> list[np.ndarray]:
        """Resize (nearest), crop and flip integer maps that share one shape."""
        rows, cols = self.label_indices(maps[0].shape[:2])
        return [np.ascontiguousarray(m[rows[:, None], cols[None, :]]) for m in maps]

    def apply_to_photo(self, photo: np.ndarray) -> np.ndarray:
        """Resize (area when shrinking, bicubic when enlarging), crop and flip a photo."""
        rh, rw = self.resized
        ph, pw = photo.shape[:2]
        if (ph, pw) != (rh, rw):
            shrink = rh <= ph and rw <= pw
            photo = cv2.resize(photo, (rw, rh),
                               interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        y, x = self.offset
        h, w = self.size
        photo = photo[y:y + h, x:x + w]
        return np.ascontiguousarray(photo[:, ::-1] if self.flip else photo)


@dataclass(frozen=True)
class Augmentation:
    """The papers' preprocessing (see the module docstring for the modes).

    Attributes:
        mode: One of :data:`MODES`.
        size: Training ``(H, W)``: the size of every item.
        load_size: ``(h, w)`` for ``resize_and_crop``; ``(L, L)`` (only ``L`` is used) for
            the ``scale_*`` modes; the training size otherwise.
        flip: Random horizontal flips.
    """

    mode: str
    size: tuple[int, int]
    load_size: tuple[int, int]
    flip: bool = True

    @classmethod
    def from_dict(cls, augment: dict | None, size: tuple[int, int],
                  flip: bool | None = None) -> Augmentation:
        """Read an augment dict (``None``: ``fixed`` resize to ``size`` with flips).

        Args:
            augment: ``{"mode", "load_size", "crop_size", "flip"}``; missing keys default
                to the training size and ``flip=True``.
            size: Training ``(H, W)``.
            flip: Overrides the dict's ``flip`` when not ``None``.

        Raises:
            SisgenInputError: Unknown mode or key, a crop that is not the training size,
                a load size smaller than the crop.
        """
        size = _pair(tuple(size), "training size")
        aug = dict(augment or {})
        unknown = set(aug) - {"mode", "load_size", "crop_size", "flip"}
        if unknown:
            raise SisgenInputError(f"unknown augment keys {sorted(unknown)}; expected mode, "
                                   "load_size, crop_size, flip")
        mode = aug.get("mode", "fixed")
        if mode not in MODES:
            raise SisgenInputError(f"unknown augment mode {mode!r}; one of {', '.join(MODES)}")
        if aug.get("crop_size") is not None and _pair(aug["crop_size"], "crop_size") != size:
            raise SisgenInputError(
                f"augment crop_size {aug['crop_size']!r} is not the training size "
                f"{size[0]}x{size[1]} (items always have the training size)")
        load = size if aug.get("load_size") is None else _pair(aug["load_size"], "load_size")
        if mode in ("fixed", "resize") and load != size:
            raise SisgenInputError(
                f"augment mode {mode!r} resizes to the training size {size[0]}x{size[1]}; "
                f"load_size {aug['load_size']!r} differs (use resize_and_crop to crop)")
        if mode == "resize_and_crop" and (load[0] < size[0] or load[1] < size[1]):
            raise SisgenInputError(f"augment load_size {aug['load_size']!r} is smaller than the "
                                   f"crop {size[0]}x{size[1]}")
        do_flip = bool(aug.get("flip", True)) if flip is None else bool(flip)
        return cls(mode, size, load, do_flip)

    def resized_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The size a map of ``shape`` is resized to before cropping."""
        h, w = shape
        ch, cw = self.size
        if self.mode in ("fixed", "resize"):
            return self.size
        if self.mode == "resize_and_crop":
            return self.load_size
        if self.mode == "scale_width_and_crop":
            scale = self.load_size[1] / w
        else:  # scale_shortside_and_crop
            scale = self.load_size[0] / min(h, w)
        scale = max(scale, ch / h, cw / w)  # never smaller than the crop
        return max(ch, round(h * scale)), max(cw, round(w * scale))

    def plan(self, shape: tuple[int, int], rng: np.random.Generator) -> Geometry:
        """Draw one item's geometry for a map of ``shape`` (always three draws from ``rng``)."""
        rh, rw = self.resized_shape(shape)
        ch, cw = self.size
        y = int(rng.integers(0, rh - ch + 1))
        x = int(rng.integers(0, rw - cw + 1))
        flip = bool(rng.random() < 0.5)
        if self.mode not in _CROP_MODES:
            y = x = 0
        return Geometry((rh, rw), (y, x), self.size, flip and self.flip)


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one item: a pure function of ``(seed, epoch, index)``."""
    return np.random.default_rng([int(seed) % 2**63, int(epoch) % 2**63, int(index) % 2**63])


# ------------------------------------------------------------------------- conversion
def _to_tensors(semantic: np.ndarray, instance: np.ndarray | None, photo: np.ndarray,
                ignore_id: int = IGNORE_ID) -> dict[str, torch.Tensor]:
    labels = semantic.astype(np.int64)
    if ignore_id != IGNORE_ID:
        labels[semantic == ignore_id] = IGNORE_ID
    inst = np.zeros(semantic.shape, np.int64) if instance is None else instance.astype(np.int64)
    # the same rule as generation (sisgen.engines.base): no instance map -> class boundaries
    edges = instance_edges(instance if instance is not None else semantic)
    image = torch.from_numpy(photo).permute(2, 0, 1).float().div(127.5).sub(1.0)
    return {
        "labels": torch.from_numpy(labels),
        "instances": torch.from_numpy(inst),
        "edges": torch.from_numpy(edges)[None],
        "image": image.contiguous(),
    }


def augment_pair(lm: LabelMap, photo: np.ndarray, geometry: Geometry,
                 vocabulary: Vocabulary | None = None) -> dict[str, torch.Tensor]:
    """Apply one item's geometry to a (label map, photo) pair and convert to tensors.

    Args:
        lm: The decoded label map (any size).
        photo: Its ``h×w×3`` uint8 RGB photo (same aspect ratio; any size).
        geometry: From :meth:`Augmentation.plan`.
        vocabulary: When given, the item's ids are checked against it (naming
            ``lm.meta["file"]``) and its ignore id becomes 255.

    Returns:
        ``labels``, ``instances``, ``edges``, ``image`` (see the module docstring).
    """
    maps = [lm.semantic] if lm.instance is None else [lm.semantic, lm.instance]
    out = geometry.apply_to_labels(maps)
    ignore_id = IGNORE_ID
    if vocabulary is not None:
        _check_ids(out[0], vocabulary, lm.meta.get("file"))
        ignore_id = vocabulary.ignore_id
    return _to_tensors(out[0], out[1] if len(out) > 1 else None,
                       geometry.apply_to_photo(photo), ignore_id)


def to_training_tensors(lm: LabelMap, photo: np.ndarray, size: tuple[int, int]
                        ) -> dict[str, torch.Tensor]:
    """Resize a pair to ``size`` (labels nearest, photo area/bicubic) and convert to tensors.

    Returns:
        ``labels`` int64 [H,W], ``instances`` int64 [H,W], ``edges`` float [1,H,W],
        ``image`` float [3,H,W] in [-1, 1].
    """
    size = (int(size[0]), int(size[1]))
    return augment_pair(lm, photo, Geometry(size, (0, 0), size, False))


def palette_to_ids(rgb: np.ndarray, vocabulary: Vocabulary,
                   path: str | os.PathLike | None = None) -> np.ndarray:
    """Convert a colour-coded label image (the vocabulary's palette) to a map of class ids.

    A colour that several classes share (Cityscapes' black void classes) becomes the
    lowest of their ids; the ignore colour is only matched when a class has it.

    Args:
        rgb: ``H×W×3`` uint8 RGB image.
        vocabulary: Gives each class's colour.
        path: The image's file, named in errors.

    Returns:
        ``H×W`` uint8 class ids.

    Raises:
        SisgenInputError: A colour is no class's colour.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise SisgenInputError(f"expected an H×W×3 RGB image, got shape {rgb.shape}", path)
    key = _colour_keys(rgb[..., :3])
    table = {}
    for c in sorted(vocabulary.classes, key=lambda c: -c.id):  # lowest id wins
        table[(c.color[0] << 16) | (c.color[1] << 8) | c.color[2]] = c.id
    colours, inverse = np.unique(key, return_inverse=True)
    ids = np.array([table.get(int(k), -1) for k in colours], dtype=np.int64)
    if (ids < 0).any():
        bad = [tuple(int(v) for v in ((k >> 16) & 255, (k >> 8) & 255, k & 255))
               for k in colours[ids < 0][:5]]
        raise SisgenInputError(f"colours not in the {vocabulary.name!r} palette: {bad}", path)
    return ids[inverse.reshape(-1)].reshape(key.shape).astype(np.uint8)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


# --------------------------------------------------------------------------- validation
def check_label_file(path: str | os.PathLike) -> None:
    """Reject a label map stored as JPEG (by suffix, and by content whatever the suffix).

    Raises:
        SisgenInputError: Naming the file.
    """
    path = Path(path)
    lossy = ("JPEG is lossy: it invents ids along every class boundary; label maps must be "
             "lossless single-channel PNGs")
    if path.suffix.lower() in _JPEG_SUFFIXES:
        raise SisgenInputError(f"JPEG label map ({lossy})", path)
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(3) == _JPEG_MAGIC:
                raise SisgenInputError(f"JPEG data in a label map file ({lossy})", path)


def explain_label_error(err: SisgenInputError, vocabulary: Vocabulary) -> SisgenInputError:
    """A more specific error for a label file a source could not read, or ``err`` itself.

    JPEG files get the lossy-format message; colour images get the conversion to ids
    (mentioning :func:`palette_to_ids` when the colours are the vocabulary's palette).
    """
    if err.path is None or not Path(err.path).is_file():
        return err
    path = Path(err.path)
    try:
        check_label_file(path)
    except SisgenInputError as jpeg:
        return jpeg
    with open(path, "rb") as f:
        head = f.read(26)
    if not head.startswith(_PNG_MAGIC) or len(head) < 26:
        return err
    colour_type = head[25]  # IHDR: 0 gray, 2 RGB, 3 indexed, 4 gray+alpha, 6 RGBA
    if colour_type == 3:
        return SisgenInputError(
            "indexed-colour (palette) PNG read as colours, not ids; if its palette indices "
            "are the class ids (PASCAL VOC style), save np.asarray(PIL.Image.open(file)) as "
            "a single-channel 8-bit PNG", path)
    if colour_type not in (2, 6):
        return err
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return err
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    known = np.isin(_colour_keys(rgb[::4, ::4]), _colour_keys(vocabulary.palette()[None])[0])
    if known.mean() >= 0.99:
        how = (f"its colours are the {vocabulary.name!r} palette (a colour visualisation); "
               "use the id maps instead (e.g. Cityscapes *_labelIds.png) or convert it with "
               "sisgen.training.data.palette_to_ids(rgb, vocabulary) and save the ids as an "
               "8-bit single-channel PNG")
    else:
        how = ("convert the colours to class ids of the vocabulary and save them as an 8-bit "
               "single-channel PNG")
    return SisgenInputError(
        f"RGB{'A' if colour_type == 6 else ''} colour-coded label map, not a single-channel "
        f"map of class ids: {how}", path)


def _check_ids(semantic: np.ndarray, vocabulary: Vocabulary, path: Any) -> None:
    """``vocabulary.validate`` on the ids present (a bincount: fast on large maps)."""
    if semantic.dtype.kind == "u" or (semantic.size and semantic.min() >= 0):
        present = np.flatnonzero(np.bincount(semantic.ravel(), minlength=1))
        vocabulary.validate(present, path)
    else:
        vocabulary.validate(semantic, path)


def _check_photo_size(label_shape: tuple[int, int], photo_shape: tuple[int, ...],
                      path: Any, sample: str) -> None:
    """Raise when photo and label map differ in aspect ratio (more than 1 % or a pixel)."""
    lh, lw = label_shape
    ph, pw = photo_shape[:2]
    if (ph, pw) == (lh, lw):
        return
    if abs(ph * lw / pw - lh) > max(1.0, _ASPECT_TOLERANCE * lh):
        raise SisgenInputError(
            f"photo of sample {sample!r} is {pw}x{ph} but its label map is {lw}x{lh} (W x H): "
            "the aspect ratios differ, so resizing cannot align them", path)


# ------------------------------------------------------------------------------ dataset
class PairedDataset(Dataset):
    """(labels, instances, edges, image) training items from a source with photos.

    Items depend only on ``(seed, epoch, index)`` (see the module docstring), never on a
    global random state.

    Args:
        source: Any :class:`~sisgen.sources.Source` whose ``photo(i)`` returns the photo.
        size: Training ``(H, W)``.
        augment: The papers' preprocessing (module docstring); ``None``: ``fixed`` resize
            to ``size`` with random flips.
        seed: Seed of the crops and flips.
        cache: Keep each decoded, un-augmented pair in memory once read (small datasets
            such as ToyCity; each DataLoader worker keeps its own).
        validate: Check every label map and photo now (see :meth:`validate`).
        flip: Overrides the augment's ``flip`` when not ``None``.

    Attributes:
        vocabulary: The source's vocabulary.
        augmentation: The resolved :class:`Augmentation`.
        epoch: The current epoch (see :meth:`set_epoch`).
    """

    def __init__(self, source: Source, size: tuple[int, int], augment: dict | None = None,
                 seed: int = 0, cache: bool = False, validate: bool = True,
                 flip: bool | None = None):
        self.source = source
        self.size = (int(size[0]), int(size[1]))
        self.augmentation = Augmentation.from_dict(augment, self.size, flip)
        self.vocabulary: Vocabulary = source.vocabulary
        self.seed = int(seed)
        self.epoch = 0
        self._cache: dict[int, tuple[LabelMap, np.ndarray]] | None = {} if cache else None
        if validate:
            self.validate()

    @property
    def flip(self) -> bool:
        """Whether items are randomly flipped."""
        return self.augmentation.flip

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips :meth:`__getitem__` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    # ---------------------------------------------------------------- decoding
    def _label_file(self, lm: LabelMap) -> Any:
        return lm.meta.get("file")

    def _photo_file(self, index: int, lm: LabelMap) -> Any:
        photo_path = getattr(self.source, "photo_path", None)
        if callable(photo_path):
            try:
                p = photo_path(index)
            except (AttributeError, IndexError, KeyError, TypeError):
                p = None
            if p is not None:
                return p
        return self._label_file(lm)

    def _read(self, index: int) -> tuple[LabelMap, np.ndarray]:
        """Decode and check one pair (JPEG/RGB labels, photo presence and aspect)."""
        try:
            lm = self.source.load(index)
        except SisgenInputError as e:
            better = explain_label_error(e, self.vocabulary)
            if better is e:
                raise
            raise better from e
        for key in ("file", "instance_file"):
            f = lm.meta.get(key)
            if f is not None and Path(f).suffix.lower() != ".json":
                check_label_file(f)
        photo = self.source.photo(index)
        if photo is None:
            raise SisgenInputError(
                f"sample {lm.id!r} has no paired photo; training needs one",
                self._photo_file(index, lm))
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise SisgenInputError(f"photo of sample {lm.id!r} is not H×W×3 uint8 RGB "
                                   f"({photo.dtype} {photo.shape})", self._photo_file(index, lm))
        _check_photo_size(lm.shape, photo.shape, self._photo_file(index, lm), lm.id)
        return lm, photo

    def _pair(self, index: int) -> tuple[LabelMap, np.ndarray]:
        if self._cache is None:
            return self._read(index)
        hit = self._cache.get(index)
        if hit is None:
            hit = self._cache[index] = self._read(index)
        return hit

    def _check(self, index: int) -> None:
        lm, _ = self._pair(index)
        _check_ids(lm.semantic, self.vocabulary, self._label_file(lm))

    def validate(self, limit: int | None = None, workers: int | None = None) -> None:
        """Check label maps and photos before training; raise on the first bad one.

        Every check of :meth:`_read` plus the vocabulary's ids (see the module docstring).
        Label maps and photos are decoded in full (Cityscapes: ~0.15 s a pair on one core),
        so large datasets are checked by worker processes, and ``limit`` bounds the work.
        A progress bar is shown above 1000 items.

        Args:
            limit: Check only the first ``limit`` items (``None``: all).
            workers: Worker processes; ``None``: up to 8 for more than 1000 items without
                ``cache`` (a cached dataset is checked in-process, filling its cache), else 0.

        Raises:
            SisgenInputError: Naming the file and the problem (the first in index order).
        """
        n = len(self) if limit is None else min(len(self), max(0, int(limit)))
        if workers is None:
            big = n > _PROGRESS_ABOVE and self._cache is None
            workers = min(8, os.cpu_count() or 1) if big else 0
        results: Any
        if workers > 0:
            loader = DataLoader(_Checker(self), batch_size=None, sampler=range(n),
                                num_workers=int(workers))
            results = iter(loader)
        else:
            results = map(_Checker(self).__getitem__, range(n))
        if n > _PROGRESS_ABOVE:
            from tqdm import tqdm

            results = tqdm(results, total=n, desc="validate labels", unit="map")
        for bad in results:
            if bad is not None:
                raise SisgenInputError(*bad)

    # ------------------------------------------------------------------- items
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"dataset has {n} items, index {index}")
        index = int(index) % n
        lm, photo = self._pair(index)
        geometry = self.augmentation.plan(lm.shape, item_rng(self.seed, self.epoch, index))
        # ids reaching the model are checked even where validation was limited or off
        return augment_pair(lm, photo, geometry, self.vocabulary)


class _Checker(Dataset):
    """Runs one dataset's checks per index, returning ``(problem, path)`` or ``None``.

    Errors travel as plain tuples: a pickled ``SisgenInputError`` would lose its path.
    """

    def __init__(self, dataset: PairedDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, str | None] | None:
        try:
            self.dataset._check(index)
        except SisgenInputError as e:
            return e.problem, e.path
        return None


def open_run_source(spec: dict[str, Any], size: tuple[int, int], seed: int = 0,
                evaluation: bool = False) -> Source:
    """Open the source a run's settings describe: ``{"kind": ..., **arguments}``.

    Arguments the settings leave out come from the source's ``run_defaults(size, seed,
    evaluation)`` where its kind has one: a procedural source renders at the run's size
    (:meth:`~sisgen.sources.toycity.ToyCitySource.run_defaults`).

    Args:
        spec: ``kind`` and the other arguments of :func:`sisgen.sources.open`.
        size: The run's ``(H, W)``.
        seed: The run's seed.
        evaluation: Open the evaluation source (other defaults) instead of the training one.

    Raises:
        SisgenInputError: No ``kind``, an unknown one, or a bad source.
    """
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind is None:
        raise SisgenInputError(f"training source needs a 'kind' (one of "
                               f"{', '.join(sources.available_sources())}), got {spec!r}")
    run_defaults = getattr(SOURCES.get(kind), "run_defaults", None)
    if run_defaults is not None:
        args = {**run_defaults(tuple(size), seed, evaluation), **args}
    return sources.open(kind, **args)


def build_dataset(source: dict | Source, size: tuple[int, int], augment: dict | None = None,
                  seed: int = 0, cache: bool = False, validate: bool = True) -> PairedDataset:
    """Open a training source and wrap it in a :class:`PairedDataset`.

    Args:
        source: ``{"kind": ..., "root": ..., "split": ..., **options}`` (see
            :func:`open_run_source`), or an opened :class:`~sisgen.sources.Source`.
        size: Training ``(H, W)``.
        augment: The papers' preprocessing (module docstring); ``None``: resize + flip.
        seed: Seed of the crops and flips (and of a procedural source such as ToyCity).
        cache: Keep decoded pairs in memory.
        validate: Check every label map and photo before returning.

    Returns:
        The dataset.

    Raises:
        SisgenInputError: No ``kind``, a bad source or augment, or a bad sample.
    """
    if not isinstance(source, Source):
        source = open_run_source(source, size, seed)
    return PairedDataset(source, size, augment, seed=seed, cache=cache, validate=validate)
