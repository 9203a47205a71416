"""The mmsegmentation layout: ``img_dir`` / ``ann_dir`` plus a ready dataset config.

::

    root/img_dir/{split}/{name}.jpg | .png    the generated images
    root/ann_dir/{split}/{name}.png           uint8 class ids, exactly as given
    root/meta.json                            classes, palette, ignore_index, vocabulary
    root/dataset_config.py                    mmseg dataset dicts, one per split written

Annotation values are the vocabulary's class ids unchanged: no ``reduce_zero_label``
shift is applied (the config sets ``reduce_zero_label=False``), and ignored pixels keep
255, mmseg's default ``ignore_index``. mmseg indexes ``metainfo['classes']`` by label
value, so ``classes`` and ``palette`` have one entry per id ``0..max id``; ids the
vocabulary leaves unused get the placeholder name ``unused_{id}`` and colour black.

``dataset_config.py`` holds plain dicts that ``mmengine.Config.fromfile`` reads, e.g.::

    train_dataset = dict(
        type='BaseSegDataset',
        data_root='/abs/root',
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        ignore_index=255,
        metainfo=dict(classes=(...), palette=[[r, g, b], ...]),
        pipeline=[],
    )

Set ``pipeline`` to the training pipeline (or merge the dict into a config that has one).
Both metadata files are rebuilt at :meth:`MMSegWriter.close` from the splits on disk, so
a resumed run (or a run writing another split into the same root) keeps the earlier
samples; re-writing a name replaces its files. Opening a writer on a root whose
``meta.json`` holds a different vocabulary raises.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_json, write_text
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import (
    IMAGE_FORMATS,
    SampleImage,
    Writer,
    Written,
    check_image_format,
    register_writer,
    write_label_png,
    write_photo,
)
from .folder import check_vocabulary_file


def mmseg_metainfo(vocabulary: Vocabulary) -> dict[str, Any]:
    """The mmseg ``metainfo`` of a vocabulary: classes and palette indexed by label value.

    Args:
        vocabulary: The vocabulary.

    Returns:
        ``{"classes": [name per id 0..max id], "palette": [[r, g, b] per id]}``; ids not in
        the vocabulary are named ``unused_{id}`` and coloured black.

    """
    classes, palette = [], []
    for i in range(vocabulary.num_classes):
        if i in vocabulary:
            c = vocabulary[i]
            classes.append(c.name)
            palette.append([int(v) for v in c.color])
        else:
            classes.append(f"unused_{i}")
            palette.append([0, 0, 0])
    return {"classes": classes, "palette": palette}


def _splits(root: Path) -> dict[str, dict[str, Any]]:
    """Scan ``ann_dir`` for the splits written so far, with counts and image suffixes."""
    out: dict[str, dict[str, Any]] = {}
    ann_root = root / "ann_dir"
    if not ann_root.is_dir():
        return out
    for d in sorted(p for p in ann_root.iterdir() if p.is_dir()):
        stems = {p.stem for p in d.glob("*.png") if not p.name.startswith(".")}
        img_dir = root / "img_dir" / d.name
        counts = {fmt: sum(1 for s in stems if (img_dir / f"{s}.{fmt}").is_file())
                  for fmt in IMAGE_FORMATS}
        suffix = max(IMAGE_FORMATS, key=lambda f: counts[f])
        out[d.name] = {"num_samples": len(stems), "img_suffix": f".{suffix}",
                       "mixed_formats": all(counts.values())}
    return out


def _py(value: Any, indent: int = 0) -> str:
    """Render a dict / list / tuple / scalar as a Python expression in mmseg config style."""
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "dict()"
        items = [f"{pad}{k}={_py(v, indent + 4)}," for k, v in value.items()]
        return "dict(\n" + "\n".join(items) + "\n" + " " * indent + ")"
    if isinstance(value, tuple):
        inner = ", ".join(_py(v, indent) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_py(v, indent) for v in value) + "]"
    return repr(value)


def dataset_config(root: Path, vocabulary: Vocabulary, splits: dict[str, dict[str, Any]]) -> str:
    """The text of ``dataset_config.py``: one ``{split}_dataset`` dict per split.

    Args:
        root: The dataset root (written as an absolute ``data_root``).
        vocabulary: The vocabulary (for ``metainfo``).
        splits: ``{split: {"img_suffix": ...}}`` as :func:`_splits` finds them.

    Returns:
        Python source with ``data_root``, ``metainfo`` and the dataset dicts.

    """
    meta = mmseg_metainfo(vocabulary)
    metainfo = {"classes": tuple(meta["classes"]), "palette": meta["palette"]}
    lines = [
        f"# mmsegmentation dataset config written by sisgen ({vocabulary.name}).",
        "# Labels are raw class ids (no reduce_zero_label shift); 255 = ignore.",
        "# Set `pipeline` (or merge these dicts into a config that defines one).",
        f"dataset_type = {'BaseSegDataset'!r}",
        f"data_root = {str(root.resolve())!r}",
        f"metainfo = {_py(metainfo)}",
        "",
    ]
    for split, info in splits.items():
        var = "".join(ch if ch.isalnum() else "_" for ch in split)
        cfg = {
            "type": "BaseSegDataset",
            "data_root": str(root.resolve()),
            "data_prefix": {"img_path": f"img_dir/{split}", "seg_map_path": f"ann_dir/{split}"},
            "img_suffix": info["img_suffix"],
            "seg_map_suffix": ".png",
            "reduce_zero_label": False,
            "ignore_index": vocabulary.ignore_id,
            "metainfo": metainfo,
            "pipeline": [],
        }
        lines += [f"{var}_dataset = {_py(cfg)}", ""]
    return "\n".join(lines)


@register_writer("mmseg")
class MMSegWriter(Writer):
    """Write samples in mmsegmentation's ``img_dir`` / ``ann_dir`` layout.

    Args:
        root: The dataset root.
        vocabulary: The id space of the label maps.
        split: The split folder (``train``, ``val``, ...).
        image_format: ``jpg`` (default) or ``png``.
        jpeg_quality: JPEG quality for ``jpg``.

    Raises:
        SisgenInputError: Bad option, or ``root/meta.json`` holds another vocabulary.

    """

    def __init__(
        self,
        root: str | os.PathLike,
        vocabulary: Vocabulary,
        split: str = "train",
        image_format: str = "jpg",
        jpeg_quality: int = 95,
        **options: Any,
    ):
        super().__init__(root, vocabulary, **options)
        self.split = split
        self.image_format = check_image_format(image_format)
        self.jpeg_quality = int(jpeg_quality)
        self.image_dir = self.root / "img_dir" / split
        self.ann_dir = self.root / "ann_dir" / split
        self.meta_path = self.root / "meta.json"
        self.config_path = self.root / "dataset_config.py"
        check_vocabulary_file(self.meta_path, vocabulary)

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the image and its annotation PNG.

        Returns:
            Paths ``{"image", "label"}`` relative to the root.

        """
        stem = self._check(name, image, labelmap)
        label = self.ann_dir / f"{stem}.png"
        write_label_png(label, labelmap.semantic, image)
        img = write_photo(self.image_dir, stem, image, self.image_format, self.jpeg_quality)
        return Written(name, {"image": self._rel(img), "label": self._rel(label)})

    def close(self) -> None:
        """Write ``meta.json`` and ``dataset_config.py`` for every split on disk."""
        if self.closed:
            return
        splits = _splits(self.root)
        mixed = [s for s, info in splits.items() if info["mixed_formats"]]
        if mixed:
            warnings.warn(
                f"{self.root}: split(s) {', '.join(mixed)} hold both .jpg and .png images "
                "(runs with different image_format); mmseg reads one img_suffix per split",
                stacklevel=2,
            )
        meta = mmseg_metainfo(self.vocabulary)
        write_json(self.meta_path, {
            "format": "mmseg",
            "classes": meta["classes"],
            "palette": meta["palette"],
            "ignore_index": self.vocabulary.ignore_id,
            "reduce_zero_label": False,
            "seg_map_suffix": ".png",
            "splits": splits,
            "vocabulary": self.vocabulary.to_dict(),
        }, indent=1)
        write_text(self.config_path, dataset_config(self.root, self.vocabulary, splits))
        super().close()
