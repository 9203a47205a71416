"""Register sisgen output with training frameworks (imported lazily, only when used).

* :func:`register_mmseg_dataset` -- an mmsegmentation dataset class for the
  ``img_dir/{split}`` + ``ann_dir/{split}`` layout, plus a ready dataset config dict.
* :func:`register_detectron2` -- the COCO writer's output as detectron2 instance and
  semantic-segmentation datasets.
* :func:`load_hf_dataset` -- a Hugging Face ``datasets`` dataset saved to disk.

Each raises :class:`MissingDependencyError` naming the package to install when its
framework is absent.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from sisgen.errors import SisgenInputError
from sisgen.vocab import Vocabulary, get_vocabulary


class MissingDependencyError(ImportError):
    """An optional framework needed by an integration is not installed."""


def require(module: str, package: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``package``.

    Args:
        module: Module to import (e.g. ``"mmseg.registry"``).
        package: The pip package that provides it.
        feature: What needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{feature} needs the '{package}' package, which is not installed (could not "
            f"import {module}: {e}); install it with `pip install {package}`") from e


def _vocab(vocabulary: str | os.PathLike | Vocabulary) -> Vocabulary:
    return get_vocabulary(vocabulary)


def class_table(vocabulary: str | os.PathLike | Vocabulary
                ) -> tuple[list[str], list[list[int]]]:
    """Class names and colours indexed by class id ``0..max id`` (gaps: ``class_<id>``).

    Framework class index ``i`` is then vocabulary id ``i``, so label PNGs written by sisgen
    (class ids, 255 ignore) are read without remapping.
    """
    vocab = _vocab(vocabulary)
    n = max(vocab.ids) + 1
    names = [f"class_{i}" for i in range(n)]
    palette = [[0, 0, 0] for _ in range(n)]
    for c in vocab.classes:
        names[c.id] = c.name
        palette[c.id] = [int(v) for v in c.color]
    return names, palette


def register_mmseg_dataset(name: str, data_root: str | os.PathLike,
                           vocabulary: str | os.PathLike | Vocabulary, *, split: str = "train",
                           img_suffix: str = ".png", seg_map_suffix: str = ".png",
                           pipeline: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Register an mmsegmentation dataset class for sisgen labels and return its config.

    Layout: ``data_root/img_dir/{split}/*{img_suffix}`` images and
    ``data_root/ann_dir/{split}/*{seg_map_suffix}`` label maps whose pixel values are the
    vocabulary's class ids (255 ignore; classes listed by id, see :func:`class_table`).
    With mmseg 1.x the class is added to ``mmseg.registry.DATASETS`` (subclassing
    ``BaseSegDataset``); with 0.x to ``mmseg.datasets.DATASETS`` (``CustomDataset``).
    Registering the same name again replaces the class.

    Args:
        name: Dataset type name (the config's ``type``).
        data_root: Dataset root.
        vocabulary: Vocabulary (name, file or object) giving classes and palette.
        split: Sub-folder of ``img_dir``/``ann_dir``.
        img_suffix: Image file suffix.
        seg_map_suffix: Label file suffix.
        pipeline: Data pipeline for the config (default: load image and annotations, pack).

    Returns:
        The dataset config dict (``dict(type=name, data_root=..., ...)``).

    Raises:
        MissingDependencyError: mmsegmentation is not installed.
    """
    names, palette = class_table(vocabulary)
    classes = tuple(names)
    metainfo = {"classes": classes, "palette": palette}
    require("mmseg", "mmsegmentation", "register_mmseg_dataset")
    try:
        registry = importlib.import_module("mmseg.registry").DATASETS
        base = importlib.import_module("mmseg.datasets").BaseSegDataset
        version = 1
    except (ImportError, AttributeError):
        mod = require("mmseg.datasets", "mmsegmentation", "register_mmseg_dataset")
        registry, base, version = mod.DATASETS, mod.CustomDataset, 0

    def __init__(self: Any, **kwargs: Any) -> None:
        kwargs.setdefault("img_suffix", img_suffix)
        kwargs.setdefault("seg_map_suffix", seg_map_suffix)
        base.__init__(self, **kwargs)

    attrs: dict[str, Any] = ({"METAINFO": metainfo} if version == 1
                             else {"CLASSES": classes, "PALETTE": palette})
    cls = type(name, (base,), {**attrs, "__init__": __init__})
    registry.register_module(name=name, module=cls, force=True)

    root = os.fspath(data_root)
    if version == 1:
        return {
            "type": name, "data_root": root,
            "data_prefix": {"img_path": f"img_dir/{split}", "seg_map_path": f"ann_dir/{split}"},
            "pipeline": pipeline if pipeline is not None else [
                {"type": "LoadImageFromFile"}, {"type": "LoadAnnotations"},
                {"type": "PackSegInputs"}],
        }
    return {
        "type": name, "data_root": root, "img_dir": f"img_dir/{split}",
        "ann_dir": f"ann_dir/{split}",
        "pipeline": pipeline if pipeline is not None else [
            {"type": "LoadImageFromFile"}, {"type": "LoadAnnotations"}],
    }


def register_detectron2(name: str, coco_root: str | os.PathLike, split: str = "train2017", *,
                        vocabulary: str | os.PathLike | Vocabulary | None = None,
                        sem_seg: bool = True) -> list[str]:
    """Register the COCO writer's output with detectron2.

    Registers ``name`` (instances, via ``detectron2.data.datasets.register_coco_instances``
    on ``annotations/instances_{split}.json`` and ``images/{split}``) and, when
    ``sem_seg`` is set, ``name + "_sem_seg"`` (``load_sem_seg`` on ``labels/{split}`` PNGs,
    whose pixel values are the vocabulary's class ids, 255 ignored). Names already
    registered are replaced.

    Args:
        name: Dataset name in ``DatasetCatalog``.
        coco_root: The COCO writer's root (``out_dir/coco``).
        split: Split name used by the writer.
        vocabulary: Vocabulary naming the semantic classes (``stuff_classes``, indexed by
            class id, see :func:`class_table`); without it ids 0..254 are ``class_<id>``.
        sem_seg: Also register the semantic-segmentation dataset.

    Returns:
        The registered names.

    Raises:
        MissingDependencyError: detectron2 is not installed.
        SisgenInputError: The instances JSON or image folder is missing.
    """
    datasets = require("detectron2.data.datasets", "detectron2", "register_detectron2")
    data = require("detectron2.data", "detectron2", "register_detectron2")
    root = Path(coco_root)
    json_file = root / "annotations" / f"instances_{split}.json"
    image_root = root / "images" / split
    if not json_file.is_file():
        raise SisgenInputError("no COCO instances JSON (write with the 'coco' writer)", json_file)
    if not image_root.is_dir():
        raise SisgenInputError("no COCO image folder", image_root)
    names = [name]
    for n in ([name, f"{name}_sem_seg"] if sem_seg else [name]):
        if n in data.DatasetCatalog.list():
            data.DatasetCatalog.remove(n)
            data.MetadataCatalog.remove(n)
    datasets.register_coco_instances(name, {}, str(json_file), str(image_root))
    if sem_seg:
        gt_root = root / "labels" / split
        stuff = (class_table(vocabulary)[0] if vocabulary is not None
                 else [f"class_{i}" for i in range(255)])
        sem_name = f"{name}_sem_seg"
        image_ext = "jpg" if any(image_root.glob("*.jpg")) else "png"

        def _load() -> list[dict[str, Any]]:
            return datasets.load_sem_seg(str(gt_root), str(image_root), gt_ext="png",
                                         image_ext=image_ext)

        data.DatasetCatalog.register(sem_name, _load)
        data.MetadataCatalog.get(sem_name).set(
            stuff_classes=stuff, ignore_label=255, evaluator_type="sem_seg",
            image_root=str(image_root), sem_seg_root=str(gt_root))
        names.append(sem_name)
    return names


def load_hf_dataset(path: str | os.PathLike) -> Any:
    """Open a Hugging Face dataset saved with ``save_to_disk`` (``datasets.load_from_disk``).

    Raises:
        MissingDependencyError: ``datasets`` is not installed.
        SisgenInputError: ``path`` does not exist.
    """
    datasets = require("datasets", "datasets", "load_hf_dataset")
    if not Path(path).exists():
        raise SisgenInputError("no such dataset folder", path)
    return datasets.load_from_disk(os.fspath(path))
