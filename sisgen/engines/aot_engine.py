"""The AOTInductor backend: ``.pt2`` packages from :func:`sisgen.export.aot.export_aot`.

A package takes batches of ``1..batch`` (``batch`` alone when exported without a dynamic
axis); other batches run in chunks or padded (:mod:`sisgen.engines.batching`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..errors import SisgenInputError
from .batching import run_in_range


class AOTEngine:
    """Runs an AOTInductor package (compiled kernels + weights; no compilation at load).

    Args:
        path: The ``.pt2`` package.
        device: Where its inputs go; must match the device type it was compiled for
            (default: that device, ``cuda`` meaning the current CUDA device).

    Raises:
        SisgenInputError: Not a loadable package, or no sisgen metadata inside.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SisgenInputError("AOT package not found", path)
        try:
            self.package = torch._inductor.aoti_load_package(path)
            meta = dict(self.package.get_metadata())
        except Exception as e:  # the loader raises RuntimeError and friends
            raise SisgenInputError(f"cannot load the AOTInductor package ({e})", path) from e
        self.metadata = {k: v for k, v in meta.items() if k.startswith("sisgen.")}
        if "sisgen.inputs" not in self.metadata:
            raise SisgenInputError("the package has no sisgen metadata (export it with "
                                   "sisgen.export.aot.export_aot)", path)
        self.input_names = tuple(json.loads(self.metadata["sisgen.inputs"]))
        aot = json.loads(self.metadata.get("sisgen.aot", "{}"))
        built = aot.get("device", "cpu")
        batch = int(aot.get("batch", 0) or 0)
        #: ``(min, max)`` batch the package runs whole (``None``: unknown, any)
        self.batch_range = None if not batch else (1 if aot.get("dynamic", True) else batch,
                                                   batch)
        self.device = torch.device(device or built)
        if self.device.type != built:
            raise SisgenInputError(f"the package was compiled for {built}, not "
                                   f"{self.device.type}", path)
        self.path = path

    @property
    def max_batch(self) -> int | None:
        """The largest batch the package runs whole, or ``None`` when unknown."""
        return None if self.batch_range is None else self.batch_range[1]

    @torch.inference_mode()
    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> torch.Tensor:
        """Generate ``[B,3,H,W]`` float32 images in [-1, 1] on the package's device."""
        feeds = {"labels": labels, "edges": edges, "noise": noise, **extra}
        args = {}
        for name in self.input_names:
            value = feeds.get(name)
            if value is None:
                raise ValueError(f"the AOT package needs input {name!r}")
            t = torch.as_tensor(value).to(self.device, non_blocking=True)
            args[name] = (t.long() if name == "labels" else t.float() if t.is_floating_point()
                          else t)
        if self.batch_range is None:
            return self.package(*args.values())
        return run_in_range(lambda part: self.package(*part.values()), args, *self.batch_range)
