"""The COCO layout: images, dense label PNGs and instances / stuff JSON.

::

    root/images/{split}/{name}.jpg                 the generated images
    root/labels/{split}/{name}.png                 uint8 class ids (COCO-Stuff style)
    root/annotations/instances_{split}.json        thing instances (+ crowd regions)
    root/annotations/stuff_{split}.json            one annotation per stuff class per image
    root/annotations/parts_{split}.jsonl           the per-image records both are built from
    root/annotations/panoptic_{split}/{name}.png   with ``panoptic=True``: segment ids as RGB
    root/annotations/panoptic_{split}.json         with ``panoptic=True``: COCO panoptic

Category ids are ``class id + 1`` for every vocabulary, so the ``coco_stuff`` vocabulary
(COCO id - 1) gives the real COCO ids. The instances file lists the thing categories
(supercategory ``thing``), the stuff file the stuff categories (supercategory ``stuff``).

Instances: each (instance id, class) pair of thing pixels with a nonzero instance id is one
annotation (``iscrowd=0``), segmented as compressed RLE (default) or as polygons
(``segmentation="polygon"``, traced with ``cv2.findContours``; COCO polygons cannot hold
holes, and an instance too thin for a polygon keeps its RLE). Thing pixels without an
instance become one ``iscrowd=1`` RLE annotation per class and image, as COCO marks crowds.
Stuff: one RLE annotation per stuff class present, as COCO-Stuff does (its extra "other"
class 183 covering thing pixels is not written; ignore pixels (255) get no annotation).
Painting the stuff masks and then the thing masks onto an all-255 canvas gives back the
label PNG exactly (with RLE).

Panoptic (``panoptic=True``), in the official COCO panoptic format: every pixel of the PNG
stores its segment id as ``R + 256 G + 256² B`` (0 = void). Segments are numbered 1, 2, ...
per image: first one per thing instance (same grouping and order as the instances file),
then one ``iscrowd=1`` segment per thing class for the thing pixels without an instance,
then one per stuff class present; ignored pixels (255) are void. ``segments_info`` entries
hold ``id``, ``category_id`` (class id + 1), ``area``, ``bbox`` (integer ``[x, y, w, h]``)
and ``iscrowd``; the categories list every class with ``isthing`` and its colour.

Nothing written is lost: each :meth:`CocoWriter.write` appends the image's records to the
JSONL part file (one line, flushed), and :meth:`CocoWriter.close` builds both JSON files
from it; :func:`build_coco_json` rebuilds them from the part file alone (a resumed run
appends to the same part file and rebuilds on close). A torn last line left by a killed run
is skipped, and when a file name occurs twice its last record wins.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..io import write_image, write_json, write_text
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import (
    SampleImage,
    SegmentRuns,
    Writer,
    Written,
    check_image_format,
    register_writer,
    safe_stem,
    segment_runs,
    segments,
    write_label_png,
    write_photo,
)

SEGMENTATIONS = ("rle", "polygon")
# how every part line starts; the image id follows as the image's first key
_IMAGE_HEAD = '{"image":{'


def compressed_rles(runs: SegmentRuns) -> list[dict[str, Any]]:
    """COCO compressed RLE (``{"size", "counts"}``) of every segment, all at once.

    The same strings pycocotools' ``encode`` gives a segment's mask: counts alternate
    background / mask run lengths from the first pixel on (column-major, a zero first count
    when the mask starts at pixel 0, the trailing background only when non-empty); from
    the fourth count on each is stored as its difference to the count two before, and
    every number is written as 5-bit groups, least significant first, one character
    ``48 + group`` each, with ``0x20`` set while more groups follow (a group's ``0x10``
    bit is the sign). Computed for all counts of all segments as array operations.

    Args:
        runs: The segments' runs (:func:`~sisgen.writers.base.segment_runs`).

    Returns:
        One RLE dict per segment, with ``counts`` as an ASCII string.
    """
    h, w = runs.height, runs.width
    n_runs = np.diff(runs.bounds)
    k = len(n_runs)
    seg = np.repeat(np.arange(k), n_runs)
    ends = runs.starts + runs.lengths
    full = n_runs > 0
    last_end = np.zeros(k, np.int64)
    last_end[full] = ends[runs.bounds[1:][full] - 1]
    tail = h * w - last_end
    size = 2 * n_runs + (tail > 0)
    offsets = np.concatenate(([0], np.cumsum(size)))
    counts = np.empty(int(offsets[-1]), np.int64)
    previous = np.concatenate(([0], ends[:-1]))
    previous[runs.bounds[:-1][full]] = 0  # a segment's first run counts from pixel 0
    at = offsets[seg] + 2 * (np.arange(len(seg)) - runs.bounds[seg])
    counts[at] = runs.starts - previous
    counts[at + 1] = runs.lengths
    has_tail = tail > 0
    counts[offsets[1:][has_tail] - 1] = tail[has_tail]
    local = np.arange(len(counts)) - np.repeat(offsets[:-1], size)
    values = counts.copy()
    later = np.flatnonzero(local > 2)
    values[later] -= counts[later - 2]
    text, cuts = _leb_text(values)
    bounds = cuts[offsets]
    return [{"size": [h, w], "counts": text[bounds[i]:bounds[i + 1]]} for i in range(k)]


#: A value needs ``n + 1`` groups from ``_GROUP_LIMITS[n - 1]`` on (two's complement).
_GROUP_LIMITS = np.array([1 << (5 * n - 1) for n in range(1, 13)], np.int64)


def _leb_text(values: np.ndarray) -> tuple[str, np.ndarray]:
    """The characters of pycocotools' RLE string for each value, and each value's offset.

    A value takes the fewest 5-bit groups that hold it in two's complement (the loop in
    pycocotools stops once the rest is the sign extension of the last group).

    Returns:
        ``(text, cuts)``: all values' characters in order, and ``[len(values) + 1]``
        offsets into ``text`` (value ``i`` is ``text[cuts[i]:cuts[i + 1]]``).
    """
    x = values.astype(np.int64)
    magnitude = np.where(x >= 0, x, ~x)  # two's complement: -1 needs as few bits as 0
    used = np.searchsorted(_GROUP_LIMITS, magnitude, side="right") + 1
    width = int(used.max(initial=1))
    chars = np.empty((width, len(x)), np.uint8)  # group k of every value in row k
    for k in range(width):
        chars[k] = ((x >> (5 * k)) & 0x1F) + 48 + ((used > k + 1) << 5)  # 0x20: more follow
    keep = np.arange(width)[:, None] < used
    cuts = np.concatenate(([0], np.cumsum(used)))
    return chars.T[keep.T].tobytes().decode("ascii"), cuts


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Trace a binary mask's outer contours as COCO polygons.

    The mask is traced at twice its resolution and the vertices halved, which puts them on
    pixel borders rather than pixel centres, so pycocotools rasterises the polygons back to
    (almost exactly) the same pixels. Holes are not represented (COCO polygons cannot hold
    them); contours of fewer than 3 vertices are dropped.

    Args:
        mask: ``H×W`` boolean or 0/1 array.

    Returns:
        A list of flat ``[x0, y0, x1, y1, ...]`` polygons (possibly empty).

    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return []
    x0, y0 = max(int(xs.min()) - 1, 0), max(int(ys.min()) - 1, 0)
    crop = mask[y0 : int(ys.max()) + 2, x0 : int(xs.max()) + 2].astype(np.uint8)
    up = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64) / 2.0 + (x0, y0)
        if len(pts) >= 3:
            polys.append([round(float(v), 2) for v in pts.ravel()])
    return polys


def image_records(
    semantic: np.ndarray,
    instance: np.ndarray | None,
    vocabulary: Vocabulary,
    segmentation: str = "rle",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Build one image's COCO annotation records (without ``id`` and ``image_id``).

    RLE, area and box of every segment come from one column-major pass over the segment
    map (:func:`~sisgen.writers.base.segment_runs`); only polygons need a mask per instance.

    Args:
        semantic: ``H×W`` class ids.
        instance: ``H×W`` instance ids (0 = none) or ``None``.
        vocabulary: Tells things from stuff; category id = class id + 1.
        segmentation: ``rle`` or ``polygon`` for the ``iscrowd=0`` thing annotations.

    Returns:
        ``(thing_records, stuff_records)``: instances in (instance id, class) order then
        crowd regions by class; stuff by class.

    """
    seg = segments(semantic, instance, vocabulary)
    runs = segment_runs(seg.ids, len(seg))
    rles = compressed_rles(runs)
    things: list[dict[str, Any]] = []
    stuff: list[dict[str, Any]] = []
    for k, (cls, box, area, crowd, thing) in enumerate(zip(
            seg.classes.tolist(), runs.boxes().tolist(), runs.areas().tolist(),
            seg.crowd.tolist(), seg.thing.tolist(), strict=True)):
        shape: Any = None
        if segmentation == "polygon" and thing and not crowd:
            shape = mask_to_polygons(seg.ids == k + 1) or None
        record = {"category_id": cls + 1,
                  "segmentation": shape if shape is not None else rles[k],
                  "area": area, "bbox": [float(v) for v in box], "iscrowd": int(crowd)}
        (things if thing else stuff).append(record)
    return things, stuff


def coco_categories(vocabulary: Vocabulary, kind: str) -> list[dict[str, Any]]:
    """Return the COCO category list of the ``thing`` or ``stuff`` classes (id = class + 1)."""
    want_thing = kind == "thing"
    return [
        {"id": c.id + 1, "name": c.name, "supercategory": kind}
        for c in vocabulary.classes
        if c.is_thing == want_thing
    ]


def panoptic_segments(
    semantic: np.ndarray, instance: np.ndarray | None, vocabulary: Vocabulary
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Build one image's COCO panoptic segment-id map and ``segments_info``.

    Args:
        semantic: ``H×W`` class ids.
        instance: ``H×W`` instance ids (0 = none) or ``None``.
        vocabulary: Tells things from stuff; category id = class id + 1.

    Returns:
        ``(ids, segments_info)``: an ``H×W`` int64 map of segment ids (0 = void) and one
        entry per segment (see the module docstring for the numbering).

    """
    seg = segments(semantic, instance, vocabulary)
    if len(seg) >= 256**3:
        raise SisgenInputError(f"{len(seg)} segments do not fit a COCO panoptic PNG")
    runs = segment_runs(seg.ids, len(seg))
    infos = [{"id": k + 1, "category_id": cls + 1, "area": area, "bbox": box,
              "iscrowd": int(crowd)}
             for k, (cls, box, area, crowd) in enumerate(zip(
                 seg.classes.tolist(), runs.boxes().tolist(), runs.areas().tolist(),
                 seg.crowd.tolist(), strict=True))]
    return seg.ids, infos


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Encode segment ids as the ``H×W×3`` uint8 RGB of COCO panoptic PNGs (R + 256G + 256²B)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """Decode a COCO panoptic RGB image to segment ids (``R + 256 G + 256² B``)."""
    rgb = np.asarray(rgb).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def panoptic_categories(vocabulary: Vocabulary) -> list[dict[str, Any]]:
    """Return the COCO panoptic category list: every class, id = class + 1, with ``isthing``."""
    return [
        {"id": c.id + 1, "name": c.name, "supercategory": "thing" if c.is_thing else "stuff",
         "isthing": int(c.is_thing), "color": [int(v) for v in c.color]}
        for c in vocabulary.classes
    ]


def read_parts(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSONL part file; torn or malformed lines are skipped, last record per file wins.

    Args:
        path: The ``parts_{split}.jsonl`` file.

    Returns:
        The records in the order their file names first appeared.

    """
    path = Path(path)
    if not path.is_file():
        return []
    by_name: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                name = rec["image"]["file_name"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            by_name[name] = rec
    return list(by_name.values())


def split_parts(ann_dir: str | os.PathLike, split: str) -> list[Path]:
    """Return every part file of a split: the main one and the per-shard ones."""
    ann_dir = Path(ann_dir)
    return sorted([*ann_dir.glob(f"parts_{split}.jsonl"),
                   *ann_dir.glob(f"parts_{split}.*.jsonl")])


def canonical_records(parts: str | os.PathLike | list[Path] | list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """Merge part records (last record per file name wins) and number images canonically.

    Images are sorted by file name and get ids 1..N, so the JSON does not depend on the
    order samples were written in: a resumed, sharded or multi-threaded run gives the same
    file as one uninterrupted run.
    """
    if isinstance(parts, (str, os.PathLike)):
        parts = [Path(parts)]
    if parts and isinstance(parts[0], dict):
        records = list(parts)
    else:
        by_name: dict[str, dict[str, Any]] = {}
        for p in parts:
            for r in read_parts(p):
                by_name[r["image"]["file_name"]] = r
        records = list(by_name.values())
    records.sort(key=lambda r: r["image"]["file_name"])
    out = []
    for i, r in enumerate(records, start=1):
        out.append({**r, "image": {**r["image"], "id": i}})
    return out


def build_coco_json(
    parts: str | os.PathLike | list[Path] | list[dict[str, Any]], vocabulary: Vocabulary,
    split: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the instances and stuff JSON documents from part files (or records).

    Images are numbered canonically (:func:`canonical_records`). Annotation ids run
    1, 2, ... over the instances file and go on in the stuff file, so they are unique
    across both.

    Args:
        parts: A JSONL part file, a list of them, or already-read records.
        vocabulary: The vocabulary (for the category lists).
        split: The split name (for the ``info`` block).

    Returns:
        ``(instances, stuff)`` as JSON-ready dicts.

    """
    records = canonical_records(parts)
    images = [r["image"] for r in records]
    info = {"description": f"sisgen synthetic data ({vocabulary.name}, {split})",
            "version": "1.0", "contributor": "sisgen"}
    next_id = 1
    docs = []
    for key, kind in (("instances", "thing"), ("stuff", "stuff")):
        anns = []
        for r in records:
            for a in r.get(key, []):
                anns.append({"id": next_id, "image_id": r["image"]["id"], **a})
                next_id += 1
        docs.append({"info": info, "licenses": [], "images": images, "annotations": anns,
                     "categories": coco_categories(vocabulary, kind)})
    return docs[0], docs[1]


def build_panoptic_json(
    parts: str | os.PathLike | list[Path] | list[dict[str, Any]], vocabulary: Vocabulary,
    split: str
) -> dict[str, Any]:
    """Build the COCO panoptic JSON document from a part file.

    Only images whose record has a ``panoptic`` entry (written with ``panoptic=True``) are
    listed.

    Args:
        parts: A JSONL part file, a list of them, or already-read records.
        vocabulary: The vocabulary (for the category list).
        split: The split name (for the ``info`` block).

    Returns:
        The ``panoptic_{split}.json`` document as a JSON-ready dict.

    """
    records = [r for r in canonical_records(parts) if isinstance(r.get("panoptic"), dict)]
    return {
        "info": {"description": f"sisgen synthetic data ({vocabulary.name}, {split}, "
                                "panoptic)", "version": "1.0", "contributor": "sisgen"},
        "licenses": [],
        "images": [r["image"] for r in records],
        "annotations": [{"image_id": r["image"]["id"], **r["panoptic"]} for r in records],
        "categories": panoptic_categories(vocabulary),
    }


@register_writer("coco")
class CocoWriter(Writer):
    """Write samples as a COCO dataset (images, label PNGs, instances and stuff JSON).

    Args:
        root: The dataset root.
        vocabulary: The id space of the label maps (category id = class id + 1).
        split: The split name used in folder and file names.
        image_format: ``jpg`` (as COCO ships) or ``png``.
        segmentation: ``rle`` or ``polygon`` for thing instances (crowd and stuff
            annotations are always RLE).
        jpeg_quality: JPEG quality for ``jpg`` images.
        panoptic: Also write COCO panoptic PNGs and ``panoptic_{split}.json``.

    """

    def __init__(
        self,
        root: str | os.PathLike,
        vocabulary: Vocabulary,
        split: str = "train2017",
        image_format: str = "jpg",
        segmentation: str = "rle",
        jpeg_quality: int = 95,
        panoptic: bool = False,
        **options: Any,
    ):
        super().__init__(root, vocabulary, **options)
        fmt = check_image_format(image_format)
        if segmentation not in SEGMENTATIONS:
            raise SisgenInputError(
                f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}"
            )
        self.split = split
        self.image_format = fmt
        self.segmentation = segmentation
        self.jpeg_quality = int(jpeg_quality)
        self.image_dir = self.root / "images" / split
        self.label_dir = self.root / "labels" / split
        self.ann_dir = self.root / "annotations"
        tag = f".{self.part_tag}" if self.part_tag else ""
        self.parts_path = self.ann_dir / f"parts_{split}{tag}.jsonl"
        self.instances_path = self.ann_dir / f"instances_{split}.json"
        self.stuff_path = self.ann_dir / f"stuff_{split}.json"
        self.panoptic = bool(panoptic)
        self.panoptic_dir = self.ann_dir / f"panoptic_{split}"
        self.panoptic_path = self.ann_dir / f"panoptic_{split}.json"
        self.ann_dir.mkdir(parents=True, exist_ok=True)
        existing = read_parts(self.parts_path)
        self._ids = {r["image"]["file_name"]: int(r["image"]["id"]) for r in existing}
        self._next_id = max(self._ids.values(), default=0) + 1
        if self.parts_path.is_file() and self.parts_path.stat().st_size:
            with open(self.parts_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:  # a killed run's partial line: start ours on a fresh line
                with open(self.parts_path, "a", encoding="utf-8") as f:
                    f.write("\n")
        self._parts_file: IO[str] | None = None  # opened by the first commit, kept open

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_parts_file": None}  # write workers never commit

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the image and label PNG (and panoptic PNG); build the image's records.

        Returns:
            Paths ``{"image", "label"}`` (and ``"panoptic"`` with ``panoptic=True``)
            relative to the root, and ``(file name, the record's compact JSON without
            its opening '{"image":{')``: :meth:`commit` writes the line with the image
            id spliced in as the image's first key.

        """
        stem = self._check(name, image, labelmap)
        file_name = f"{stem}.{self.image_format}"
        paths = {"image": self.image_dir / file_name, "label": self.label_dir / f"{stem}.png"}
        semantic = labelmap.semantic
        things, stuff = image_records(semantic, labelmap.instance, self.vocabulary,
                                      self.segmentation)
        write_label_png(paths["label"], semantic, image)
        write_photo(self.image_dir, stem, image, self.image_format, self.jpeg_quality)
        h, w = labelmap.shape
        record = {
            "image": {"file_name": file_name, "width": w, "height": h},
            "instances": things,
            "stuff": stuff,
        }
        if self.panoptic:
            ids, segments = panoptic_segments(semantic, labelmap.instance, self.vocabulary)
            paths["panoptic"] = self.panoptic_dir / f"{stem}.png"
            write_image(paths["panoptic"], id2rgb(ids))
            record["panoptic"] = {"file_name": f"{stem}.png", "segments_info": segments}
        # the JSON text is made here, in the write worker; commit only splices the id in
        text = json.dumps(record, separators=(",", ":"))
        return Written(name, {role: self._rel(p) for role, p in paths.items()},
                       (file_name, text[len(_IMAGE_HEAD):]))

    def commit(self, written: Written) -> dict[str, str]:
        """Give the image its id and append its records to the part file (one line).

        A file name written before (in this run or, on resume, an earlier one) keeps its
        image id; the new record replaces the old one.
        """
        file_name, rest = written.record
        image_id = self._ids.get(file_name)
        if image_id is None:
            image_id = self._ids[file_name] = self._next_id
            self._next_id += 1
        if self._parts_file is None:
            self._parts_file = open(self.parts_path, "a", encoding="utf-8")  # noqa: SIM115
        self._parts_file.write(f'{_IMAGE_HEAD}"id":{image_id},{rest}\n')
        self._parts_file.flush()  # in the file before the sample's manifest line
        return written.paths

    def _close_parts(self) -> None:
        if self._parts_file is not None:
            self._parts_file.close()
            self._parts_file = None

    def recover(self, names: set[str]) -> None:
        """Keep only the part records of ``names`` (see :meth:`Writer.recover`)."""
        self._close_parts()  # the file is replaced
        stems = {safe_stem(n) for n in names}
        kept = [r for r in read_parts(self.parts_path)
                if Path(r["image"]["file_name"]).stem in stems]
        write_text(self.parts_path, "".join(json.dumps(r, separators=(",", ":")) + "\n"
                                            for r in kept))
        self._ids = {r["image"]["file_name"]: int(r["image"]["id"]) for r in kept}
        self._next_id = max(self._ids.values(), default=0) + 1

    def close(self) -> None:
        """Build ``instances_{split}.json`` and ``stuff_{split}.json`` from the part files.

        Every part file of the split is read (all shards of a run write into one folder),
        so closing any writer -- or ``sisgen merge`` -- produces the complete JSON.

        With ``panoptic=True`` also ``panoptic_{split}.json``.
        """
        if self.closed:
            return
        self._close_parts()
        records = canonical_records(split_parts(self.ann_dir, self.split))
        instances, stuff = build_coco_json(records, self.vocabulary, self.split)
        write_json(self.instances_path, instances)
        write_json(self.stuff_path, stuff)
        if self.panoptic:
            write_json(self.panoptic_path,
                       build_panoptic_json(records, self.vocabulary, self.split))
        super().close()
