"""The ``sisgen.*`` metadata that makes an exported file self-describing.

ONNX files carry it in their ``metadata_props``; AOTInductor packages in their embedded
metadata; TensorRT plans hold no free-form metadata, so a TensorRT engine ``x.engine``
carries it in a *sidecar* ``x.engine.json`` written beside it by the builder. Whatever the
container, the content is the same flat ``{"sisgen.<key>": str}`` mapping (JSON strings
where structured) that :func:`generator_from_metadata` turns into a :class:`Generator`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import SisgenInputError
from .base import Engine, Generator


def sidecar_path(path: str | os.PathLike) -> Path:
    """The metadata sidecar of an engine file: ``x.engine`` -> ``x.engine.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Write ``metadata`` (string values) beside ``path``; returns the sidecar path."""
    side = sidecar_path(path)
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"metadata values must be strings (JSON where structured): {bad}")
    tmp = side.with_name(f".{side.name}.tmp")
    tmp.write_text(json.dumps(metadata, indent=1, sort_keys=True))
    os.replace(tmp, side)
    return side


def read_sidecar(path: str | os.PathLike) -> dict[str, str]:
    """Read the sidecar of ``path``.

    Raises:
        SisgenInputError: The sidecar is missing, is not JSON, or holds no sisgen metadata.
    """
    side = sidecar_path(path)
    if not side.is_file():
        raise SisgenInputError(
            f"no metadata sidecar {side.name} beside the engine (TensorRT plans hold no "
            "metadata; build engines with sisgen.export.build_engine, which writes it)", path)
    try:
        meta = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SisgenInputError(f"unreadable metadata sidecar ({e})", side) from e
    if not isinstance(meta, dict) or "sisgen.resolution" not in meta:
        raise SisgenInputError("metadata sidecar has no sisgen.resolution", side)
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def generator_from_metadata(engine: Engine, metadata: dict[str, str], path: str | os.PathLike,
                            backend: str) -> Generator:
    """Wrap ``engine`` in a :class:`Generator` described by its ``sisgen.*`` metadata.

    Raises:
        SisgenInputError: The metadata lacks ``sisgen.resolution`` or is malformed.
    """
    from ..vocab import Vocabulary

    if "sisgen.resolution" not in metadata:
        raise SisgenInputError("the file has no sisgen metadata (export it with "
                               "`sisgen export`)", path)
    try:
        vocab = metadata.get("sisgen.vocabulary")
        resolution: Any = json.loads(metadata["sisgen.resolution"])
        noise = json.loads(metadata.get("sisgen.noise") or "{}")
        clusters = metadata.get("sisgen.feature_clusters")
        clusters = json.loads(clusters) if clusters else None
    except json.JSONDecodeError as e:
        raise SisgenInputError(f"malformed sisgen metadata ({e})", path) from e
    if clusters is not None:
        from ..models.style_features import clusters_from_dict

        clusters = clusters_from_dict(clusters, path)
    return Generator(
        engine,
        Vocabulary.from_dict(json.loads(vocab), source=str(path)) if vocab else None,
        tuple(resolution),
        noise,
        model_name=metadata.get("sisgen.model_name", ""),
        model_hash=metadata.get("sisgen.model_hash", ""),
        uses_edges="edges" in engine.input_names,
        backend=backend,
        feature_clusters=clusters,
    )
