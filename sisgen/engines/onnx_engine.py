"""The ONNX Runtime backend (CPU, or CUDA when onnxruntime-gpu is installed)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import SisgenInputError


class OnnxEngine:
    """Runs an exported ``.onnx`` generator with onnxruntime.

    Inputs the graph does not use (an edge map for a model without edges) are skipped.

    Args:
        path: The ONNX file.
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        threads: Intra-op threads (0: onnxruntime's default).
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int = 0):
        import onnxruntime as ort

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SisgenInputError("ONNX file not found", path)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: graph-folding notices are not for users
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as e:  # onnxruntime raises several unrelated types
            raise SisgenInputError(f"onnxruntime cannot open the model ({e})", path) from e
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_name = self.session.get_outputs()[0].name
        self.path = path

    @property
    def metadata(self) -> dict[str, str]:
        """The model's custom metadata (what ``sisgen export`` embedded)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> np.ndarray:
        """Generate images (NCHW float in [-1, 1], or NHWC uint8 for byte-output exports)."""
        return self.run({"labels": labels, "edges": edges, "noise": noise, **extra})

    def run(self, feeds: dict[str, Any]) -> np.ndarray:
        """Run with inputs by name (torch tensors or arrays); unused names are ignored."""
        inputs = {}
        for name in self.input_names:
            value = feeds.get(name)
            if value is None:
                raise ValueError(f"the ONNX model needs input {name!r}")
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            inputs[name] = np.ascontiguousarray(
                value, dtype=np.int64 if name == "labels" else np.float32)
        return self.session.run([self.output_name], inputs)[0]
