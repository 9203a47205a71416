"""Export of sisgen generators to deployable engines (``sisgen.export``)."""

from .api import FORMAT_ARGS, export
from .check import ParityResult, check_parity
from .onnx import export_onnx

__all__ = ["FORMAT_ARGS", "ParityResult", "check_parity", "export", "export_onnx"]
