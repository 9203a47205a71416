"""The plain folder layout, which the ``folder`` source reads back unchanged.

::

    root/images/{name}.jpg | .png      the generated images (JPEG by default)
    root/labels/{name}.png             uint8 class ids (255 = ignore), exactly as given
    root/instances/{name}.png          uint16 instance ids (0 = none); only when the
                                       label map has an instance map
    root/vocabulary.json               ``Vocabulary.to_dict()`` of the id space

``sources.open("folder", root)`` finds ``vocabulary.json`` and yields the same label maps
(ids, instance ids and sample names) that were written. Instance ids are kept as they are
when they fit uint16 (0..65535); otherwise every nonzero id of the map is renumbered
``1..N`` in ascending order of the original ids.

``vocabulary.json`` is written when the writer opens (so even a killed run's output is
readable) and again at :meth:`FolderWriter.close`. Opening a writer on a folder whose
``vocabulary.json`` describes a different id space raises instead of mixing two id
spaces in one dataset. Re-writing a name replaces its files (a stale image of the other
format and a stale instance map are removed).

The helpers :func:`uint16_instances` and :func:`check_vocabulary_file` are shared by the
other writers of this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..io import read_json, write_image, write_json
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import (
    SampleImage,
    Writer,
    Written,
    check_image_format,
    register_writer,
    write_label_png,
    write_photo,
)


def uint16_instances(instance: np.ndarray) -> np.ndarray:
    """Fit an instance map into uint16, renumbering only when it has to.

    Args:
        instance: ``H×W`` integer instance ids (0 = none).

    Returns:
        The map as uint16: unchanged when every id is in ``0..65535``; otherwise the
        nonzero ids renumbered ``1..N`` in ascending order of the original ids.

    Raises:
        SisgenInputError: More than 65535 distinct instances.

    """
    inst = np.asarray(instance)
    if inst.size == 0 or (inst.min() >= 0 and inst.max() <= np.iinfo(np.uint16).max):
        return inst.astype(np.uint16)
    uniq, inverse = np.unique(inst, return_inverse=True)
    nonzero = uniq != 0
    if int(nonzero.sum()) > np.iinfo(np.uint16).max:
        raise SisgenInputError(
            f"{int(nonzero.sum())} instances do not fit a uint16 instance map (at most 65535)"
        )
    new = np.zeros(len(uniq), dtype=np.uint16)
    new[nonzero] = np.arange(1, int(nonzero.sum()) + 1, dtype=np.uint16)
    return new[inverse.reshape(inst.shape)]


def check_vocabulary_file(path: Path, vocabulary: Vocabulary) -> None:
    """Refuse to add samples of one vocabulary to a dataset written with another.

    Args:
        path: A JSON file holding ``Vocabulary.to_dict()`` (at the top level, or under a
            ``vocabulary`` key); a missing or unreadable file passes.
        vocabulary: The writer's vocabulary.

    Raises:
        SisgenInputError: The file describes different classes or a different ignore id.

    """
    if not path.is_file():
        return
    try:
        data = read_json(path)
    except SisgenInputError:
        return  # torn by a killed run: rewritten at close
    if isinstance(data, dict) and "vocabulary" in data:
        data = data["vocabulary"]
    if not isinstance(data, dict) or "classes" not in data:
        return
    theirs = (data.get("ignore_id"), data.get("classes"))
    mine = vocabulary.to_dict()
    if theirs != (mine["ignore_id"], mine["classes"]):
        raise SisgenInputError(
            f"the dataset was written with another vocabulary ({data.get('name')!r}) than "
            f"{vocabulary.name!r}; write to a new root or use the same vocabulary",
            path,
        )


@register_writer("folder")
class FolderWriter(Writer):
    """Write samples as a plain folder of images, label PNGs and instance PNGs.

    Args:
        root: The dataset root.
        vocabulary: The id space of the label maps (saved as ``vocabulary.json``).
        image_format: ``jpg`` (default) or ``png`` (lossless, about 7x larger and 10x slower
            to encode).
        jpeg_quality: JPEG quality for ``jpg``.

    Raises:
        SisgenInputError: Bad option, or ``root/vocabulary.json`` holds another vocabulary.

    """

    def __init__(
        self,
        root: str | os.PathLike,
        vocabulary: Vocabulary,
        image_format: str = "jpg",
        jpeg_quality: int = 95,
        **options: Any,
    ):
        super().__init__(root, vocabulary, **options)
        self.image_format = check_image_format(image_format)
        self.jpeg_quality = int(jpeg_quality)
        self.image_dir = self.root / "images"
        self.label_dir = self.root / "labels"
        self.instance_dir = self.root / "instances"
        self.vocabulary_path = self.root / "vocabulary.json"
        check_vocabulary_file(self.vocabulary_path, vocabulary)
        write_json(self.vocabulary_path, vocabulary.to_dict(), indent=1)

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the image, the label PNG and (when there is one) the instance PNG.

        Returns:
            Paths ``{"image", "label"}`` plus ``"instance"`` when the label map has
            instances, relative to the root.

        """
        stem = self._check(name, image, labelmap)
        paths = {"label": self.label_dir / f"{stem}.png"}
        inst_path = self.instance_dir / f"{stem}.png"
        write_label_png(paths["label"], labelmap.semantic, image)
        if labelmap.instance is not None:
            write_image(inst_path, uint16_instances(labelmap.instance))
            paths["instance"] = inst_path
        else:
            inst_path.unlink(missing_ok=True)
        paths["image"] = write_photo(self.image_dir, stem, image, self.image_format,
                                     self.jpeg_quality)
        return Written(name, {role: self._rel(p) for role, p in paths.items()})

    def close(self) -> None:
        """Write ``vocabulary.json`` (again); safe to call more than once."""
        if self.closed:
            return
        write_json(self.vocabulary_path, self.vocabulary.to_dict(), indent=1)
        super().close()
