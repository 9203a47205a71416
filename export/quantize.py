"""int8 ONNX exports for CPU onnxruntime: static quantization calibrated on label maps.

:func:`quantize_int8` turns an fp32 ONNX export into a QDQ int8 model with onnxruntime's
quantization tools: weights int8 per output channel, activations uint8 with ranges measured
by running the fp32 model on calibration inputs (a histogram per tensor, clipped at the
99.999th percentile, which keeps rare outliers from stretching the range). Convolutions,
matrix products, residual additions and SPADE's modulation products, LeakyReLU, nearest
resizes and concatenations run in int8, so onnxruntime can keep whole chains in int8
between them; normalizations and the output stay float.

On CPUs with VNNI (AVX512-VNNI / AVX-VNNI) this makes the ToyCity SPADE ~2x faster than
fp32 (see the README's measured section). Older AVX2-only CPUs can saturate the u8 x s8
products onnxruntime uses there: quantize with ``reduce_range=True`` (7-bit weights) for
models that will run on such machines.

Calibration inputs (:func:`calibration_feeds`): by default random blob maps like the parity
check's (every class, many borders); or label maps of the user's data (``labelmaps``). On
the trained ToyCity SPADE the blob maps gave the closer images (PSNR 34.2 dB against fp32,
vs 31.9 dB from 64 or 256 ToyCity maps): they reach every class and edge pattern, where a
sample of real maps leaves rarer ones out of the ranges. Compare both on your model with
``benchmarks/int8.py``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap
from sisgen.models.base import SISGenerator
from sisgen.sources import Source

from .check import parity_inputs

#: The op types quantized to int8 (everything else stays float).
INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "LeakyRelu", "Resize",
            "Concat")
#: Calibration maps when none are given, and per run of the fp32 model.
CALIBRATION_MAPS = 64
CALIBRATION_BATCH = 8


def calibration_feeds(model: SISGenerator, labelmaps: Sequence[LabelMap] | None = None, *,
                      maps: int = CALIBRATION_MAPS, batch: int = CALIBRATION_BATCH,
                      seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``model``'s inputs by name, to calibrate a quantization with.

    Args:
        model: The generator being exported.
        labelmaps: Label maps to build the inputs from (resized to the model's resolution,
            edges from their instances, noise from seeds ``seed + i``), as ``generate``
            builds them; ``None``: ``maps`` random blob maps.
        maps: How many blob maps without ``labelmaps``.
        batch: Maps per batch.
        seed: Seed of the noise (and of the blob maps).

    Yields:
        ``{input name: array}`` for every input the model uses.
    """
    if labelmaps is None:
        for k in range(0, maps, batch):
            feeds = parity_inputs(model, min(batch, maps - k), seed=seed + 1000 + k)
            yield {name: t.numpy() for name, t in feeds.items()}
        return
    from sisgen.engines.base import Generator
    from sisgen.engines.torch_engine import TorchEngine

    gen = Generator.from_model(TorchEngine(model), model, model_hash="")
    used = set(model.input_names)
    for k in range(0, len(labelmaps), batch):
        chunk = list(labelmaps[k:k + batch])
        inputs = gen.prepare_named(chunk, [seed + k + i for i in range(len(chunk))])
        yield {name: t.numpy() for name, t in inputs.items() if name in used}


def calibration_maps(source: Source, count: int = CALIBRATION_MAPS) -> list[LabelMap]:
    """``count`` maps spread evenly over ``source`` (all of a smaller one), in order.

    Raises:
        SisgenInputError: A map cannot be read (the source names the file).
    """
    picks = np.unique(np.linspace(0, len(source) - 1, min(int(count), len(source)))
                      .round().astype(int))
    return [source.load(int(i)) for i in picks]


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike,
                  calibration: Iterable[dict[str, np.ndarray]], *,
                  ops: Sequence[str] = INT8_OPS, reduce_range: bool = False,
                  percentile: float = 99.999) -> Path:
    """Quantize the fp32 ONNX file ``source`` into the int8 (QDQ) file ``target``.

    The ``sisgen.*`` metadata is kept, with ``sisgen.precision`` set to ``int8``.

    Args:
        source: An fp32 ONNX export.
        target: The int8 file to write (atomically; may equal ``source``).
        calibration: Input batches (``{name: array}``, see :func:`calibration_feeds`).
        ops: Op types to quantize.
        reduce_range: 7-bit weights, for CPUs without VNNI (see the module docstring).
        percentile: The calibration histogram percentile that bounds each range.

    Returns:
        ``target``.

    Raises:
        SisgenInputError: No calibration batch, or one without an input the model needs.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = Path(source), Path(target)
    needed = {i.name for i in onnx.load(str(source), load_external_data=False).graph.input}
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise SisgenInputError("int8 quantization needs at least one calibration batch",
                               source)
    missing = sorted(needed - set(first))
    if missing:
        raise SisgenInputError(f"the calibration inputs lack {', '.join(missing)}", source)

    all_batches = itertools.chain([first], batches)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            feeds = next(all_batches, None)
            return None if feeds is None else {k: feeds[k] for k in needed}

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8-") as tmp:
        prepared = Path(tmp, "prepared.onnx")
        # shape inference and graph fusions first (onnxruntime's recommended step); the
        # symbolic pass cannot size the dynamic batch through every op, and is not needed
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantized = Path(tmp, "int8.onnx")
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(ops),
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": percentile})
        proto = onnx.load(str(quantized))
        _set_metadata(proto, {"sisgen.precision": "int8"})
        onnx.save(proto, str(quantized))
        os.replace(quantized, target)
    return target


def _set_metadata(proto: Any, values: dict[str, str]) -> None:
    """Set ``values`` in an ONNX model's metadata; drop the quantizer's own entries."""
    kept = [(p.key, p.value) for p in proto.metadata_props
            if p.key not in values and not p.key.startswith("onnx.")]
    del proto.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        proto.metadata_props.add(key=key, value=value)
