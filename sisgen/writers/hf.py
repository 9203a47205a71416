"""A Hugging Face ``datasets`` dataset, saved with ``Dataset.save_to_disk``.

::

    root/buffer/...            every sample as written, in the ``folder`` layout
                               (images/, labels/, instances/, vocabulary.json)
    root/hf/                   ``datasets.load_from_disk(root / "hf")``
    root/hf/vocabulary.json    the id space of the label images

The dataset has one row per sample, sorted by ``id``, with the features

- ``image``: ``Image()``, the generated image (PNG or JPEG bytes, ``image_format``);
- ``label``: ``Image()``, an 8-bit PNG of the class ids (255 = ignore), as given;
- ``instance``: ``Image()``, a 16-bit PNG of the instance ids (0 = none; renumbered
  ``1..N`` only when an id does not fit uint16), or ``None`` for a map without instances;
- ``id``: ``string``, the sample's file stem.

``np.array(row["label"])`` gives the label map back exactly. Samples go to the buffer as
they are written, so nothing is lost when a run dies; :meth:`HFWriter.close` builds the
dataset from the whole buffer (earlier runs on the same root included, a re-written name
once) through ``Dataset.from_generator``, which streams rows to Arrow files instead of
holding them in memory, and replaces ``root/hf`` only once the new copy is complete.
Needs ``pip install datasets pillow``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import SampleImage, Writer, Written, register_writer
from .folder import FolderWriter


def _require_datasets() -> Any:
    try:
        import datasets
        import PIL  # noqa: F401  (the Image feature decodes with Pillow)
    except ImportError as e:
        raise SisgenInputError(
            f"the 'hf' writer needs the Hugging Face datasets library with Pillow ({e}); "
            "install them with `pip install datasets pillow`"
        ) from e
    return datasets


def _rows(buffer: str, stems: list[str]) -> Iterator[dict[str, Any]]:
    """Yield the dataset rows of ``stems`` read from the buffer folder."""
    root = Path(buffer)
    for stem in stems:
        image = next(p for ext in ("png", "jpg")
                     if (p := root / "images" / f"{stem}.{ext}").is_file())
        inst = root / "instances" / f"{stem}.png"
        yield {
            "image": {"bytes": image.read_bytes(), "path": image.name},
            "label": {"bytes": (root / "labels" / f"{stem}.png").read_bytes(),
                      "path": f"{stem}.png"},
            "instance": ({"bytes": inst.read_bytes(), "path": inst.name}
                         if inst.is_file() else None),
            "id": stem,
        }


@register_writer("hf")
class HFWriter(Writer):
    """Write samples as a Hugging Face ``datasets`` dataset (``save_to_disk``).

    Args:
        root: The output folder (``root/hf`` is the dataset, ``root/buffer`` the samples).
        vocabulary: The id space of the label maps.
        image_format: ``jpg`` (default) or ``png`` for the ``image`` column.
        jpeg_quality: JPEG quality for ``jpg``.

    Raises:
        SisgenInputError: ``datasets`` or Pillow is not installed, a bad option, or the
            buffer holds another vocabulary.

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
        self._datasets = _require_datasets()
        self.buffer = FolderWriter(self.root / "buffer", vocabulary, image_format=image_format,
                                   jpeg_quality=jpeg_quality)
        self.image_format = self.buffer.image_format
        self.dataset_dir = self.root / "hf"

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the sample to the buffer folder.

        Returns:
            Paths ``{"image", "label"[, "instance"]}`` of the buffered files relative to
            the root (the dataset itself is built at :meth:`close`).

        """
        if self.closed:
            raise RuntimeError(f"{self.kind} writer at {self.root} is closed")
        written = self.buffer.write_files(name, image, labelmap)
        return Written(name, {role: f"buffer/{p}" for role, p in written.paths.items()})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_datasets"] = None  # a module: re-imported where the copy is used
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._datasets = _require_datasets()

    def features(self) -> Any:
        """The ``datasets.Features`` of the dataset."""
        ds = self._datasets
        return ds.Features({"image": ds.Image(), "label": ds.Image(), "instance": ds.Image(),
                            "id": ds.Value("string")})

    def build(self, cache_dir: str | os.PathLike) -> Any:
        """Build the ``datasets.Dataset`` from everything in the buffer.

        Args:
            cache_dir: Where ``datasets`` writes the Arrow files.

        Returns:
            The dataset.

        """
        ds = self._datasets
        buf = self.buffer
        stems = sorted(  # the image is written last: a sample without one is incomplete
            p.stem for p in buf.label_dir.glob("*.png")
            if not p.name.startswith(".")
            and any((buf.image_dir / f"{p.stem}.{ext}").is_file() for ext in ("png", "jpg"))
        )
        if not stems:
            return ds.Dataset.from_dict({"image": [], "label": [], "instance": [], "id": []},
                                        features=self.features())
        return ds.Dataset.from_generator(
            _rows,
            features=self.features(),
            cache_dir=os.fspath(cache_dir),
            gen_kwargs={"buffer": str(self.buffer.root), "stems": stems},
            fingerprint=f"sisgen-hf-{os.getpid()}-{id(self)}",
        )

    def close(self) -> None:
        """Build the dataset from the buffer and save it to ``root/hf``."""
        if self.closed:
            return
        self.buffer.close()
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".hf.tmp-{os.getpid()}-"))
        try:
            dataset = self.build(tmp / "cache")
            out = tmp / "hf"
            dataset.save_to_disk(str(out))
            (out / "vocabulary.json").write_text(json.dumps(self.vocabulary.to_dict(), indent=1),
                                                 encoding="utf-8")
            del dataset
            old = tmp / "old"
            if self.dataset_dir.exists():
                os.replace(self.dataset_dir, old)
            os.replace(out, self.dataset_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        super().close()
