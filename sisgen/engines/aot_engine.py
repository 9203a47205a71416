"""The AOTInductor backend: ``.pt2`` packages from :func:`sisgen.export.aot.export_aot`."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..errors import SisgenInputError


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
        built = json.loads(self.metadata.get("sisgen.aot", "{}")).get("device", "cpu")
        self.device = torch.device(device or built)
        if self.device.type != built:
            raise SisgenInputError(f"the package was compiled for {built}, not "
                                   f"{self.device.type}", path)
        self.path = path

    @torch.inference_mode()
    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> torch.Tensor:
        """Generate ``[B,3,H,W]`` float32 images in [-1, 1] on the package's device."""
        feeds = {"labels": labels, "edges": edges, "noise": noise, **extra}
        args = []
        for name in self.input_names:
            value = feeds.get(name)
            if value is None:
                raise ValueError(f"the AOT package needs input {name!r}")
            t = torch.as_tensor(value).to(self.device, non_blocking=True)
            args.append(t.long() if name == "labels" else t.float() if t.is_floating_point()
                        else t)
        return self.package(*args)
