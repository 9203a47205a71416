"""Export of sisgen generators to deployable engines (``sisgen.export``)."""

from .onnx import ParityResult, check_parity, export_onnx

__all__ = ["ParityResult", "check_parity", "export_onnx"]
