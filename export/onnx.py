"""ONNX export of sisgen generators: metadata inside, fp16, dynamic HxW, parity checked.

The exported graph is the model's *export form* (spectral norm folded with its stored
vectors, eval-mode norms, no randomness inside) with compact inputs:

* ``labels`` int64 ``[B,H,W]`` -- one-hot expansion happens inside the graph;
* ``edges`` float32 ``[B,1,H,W]`` -- only for models that use instance edges;
* ``noise`` float32 ``[B,*noise_shape]`` -- only for models that take noise;
* any further input a model declares in ``input_names`` (e.g. a photo and a mask);

and one output ``image``: float32 ``[B,3,H,W]`` in [-1, 1], or with ``uint8_output`` the
bytes ``[B,H,W,3]`` so that only uint8 pixels leave the device. The batch axis is always
dynamic; with ``dynamic_hw`` so are H and W (multiples of the architecture's
:meth:`~sisgen.models.base.SISGenerator.dynamic_hw_multiple`), where the architecture allows.

``half=True`` converts the traced fp32 graph to fp16 (:func:`convert_to_fp16`) but keeps
the normalizations (BatchNorm / InstanceNorm / LayerNorm / GroupNorm), reductions and the
divisions, powers and exponentials around them in fp32, with Cast nodes at the borders:
their statistics over- or underflow in fp16 (the known InstanceNorm / BatchNorm fp16
failures of TensorRT and onnxruntime). Inputs and outputs keep their types (float32 /
int64, or uint8 bytes).

``simplify=True`` runs onnxslim when it is installed (``pip install sisgen[export]``); a
missing onnxslim or any failure only warns and keeps the unsimplified graph. The result is
checked with full type inference: onnxslim 0.1.x folds the ``Resize`` scales of an
*unoptimized* dynamo graph (``optimize=False``) into float64, an invalid model, which is
caught here and reported as a failure; on the optimized graph it works.

``int8=True`` quantizes the fp32 graph with onnxruntime's static QDQ quantization,
calibrated on ``calibration`` input batches (see :mod:`sisgen.export.quantize`): ~2x faster
on CPUs with VNNI, an approximation whose parity check bounds the mean difference.

Metadata keys (all strings, JSON where structured): ``sisgen.model_name``,
``sisgen.architecture``, ``sisgen.config``, ``sisgen.vocabulary``, ``sisgen.resolution``,
``sisgen.noise``, ``sisgen.model_hash``, ``sisgen.output``, ``sisgen.precision``
(``fp32``/``fp16``/``int8``), ``sisgen.dynamic_hw`` (``0`` when fixed, else the size multiple).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.onnx_export import quiet_onnx_export

from .check import ParityResult, check_parity, parity_inputs

log = logging.getLogger(__name__)

#: Ops a half export keeps in fp32: normalizations and the reductions, divisions, powers
#: and exponentials of normalization-like subgraphs (statistics overflow fp16), and the
#: scatter-add / cumulative sums of segment statistics (SAFM, CLADE-ICPE).
FP32_OPS = frozenset({
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt",
    "Reciprocal", "Div", "Softmax", "LogSoftmax", "Exp", "Log", "CumSum",
    "ScatterElements", "ScatterND",  # scatter-add reductions (no fp16 CPU kernel either)
})

#: Largest batch the dynamic batch axis declares.
MAX_BATCH = 4096
#: Largest H or W a dynamic-HxW export declares.
MAX_SIDE = 8192


class _ExportWrapper(nn.Module):
    """Fixes the input list to what the model uses and optionally emits uint8 NHWC."""

    def __init__(self, model: SISGenerator, names: list[str], uint8_output: bool):
        super().__init__()
        self.model = model
        self.names = names
        self.uint8_output = uint8_output

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        image = self.model(**dict(zip(self.names, inputs, strict=True)))
        if self.uint8_output:
            image = ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
            image = image.permute(0, 2, 3, 1)
        return image


def used_inputs(model: SISGenerator, example: tuple) -> tuple[list[str], list[torch.Tensor]]:
    """The names and tensors of the inputs a model uses (those not ``None`` in ``example``)."""
    pairs = [(n, v) for n, v in zip(model.input_names, example, strict=True) if v is not None]
    return [n for n, _ in pairs], [v for _, v in pairs]


def export_onnx(
    model: SISGenerator,
    file: str | os.PathLike,
    *,
    opset: int = 18,
    uint8_output: bool = False,
    half: bool = False,
    dynamic_hw: bool = False,
    simplify: bool = False,
    check: bool = True,
    check_batch: int = 2,
    optimize: bool = True,
    int8: bool = False,
    calibration: Iterable[dict[str, np.ndarray]] | None = None,
) -> tuple[Path, ParityResult | None]:
    """Export ``model`` to ONNX.

    Args:
        model: The generator (training form is fine: the export form is derived here).
        file: Output ``.onnx`` path (written atomically).
        opset: ONNX opset (>= 17).
        uint8_output: Emit ``[B,H,W,3]`` uint8 instead of float images.
        half: fp16 weights and activations, normalizations kept in fp32 (see module doc).
        dynamic_hw: Dynamic H and W (multiples of ``model.dynamic_hw_multiple()``).
        simplify: Run onnxslim on the graph (warns and skips when it fails).
        check: Run the onnxruntime (CPU) parity check against torch
            (:func:`sisgen.export.check.check_parity`; tolerance 1e-4 fp32, 2e-2 fp16, plus
            one level for uint8 output).
        check_batch: Batch size of the parity check (different from the trace batch, so
            the dynamic batch axis is exercised too).
        optimize: Run the exporter's graph optimizer (constant folding, dead-code removal).
            onnxruntime optimizes again when it loads the file, so turning this off only
            makes a larger file; it saves most of the export time of large graphs.
        int8: Quantize to int8 for CPU onnxruntime (:func:`~sisgen.export.quantize.
            quantize_int8`).
        calibration: int8 calibration batches (``{input name: array}``); default
            :func:`~sisgen.export.quantize.calibration_feeds` on random blob maps; your own
            maps: ``calibration_feeds(model, labelmaps)``.

    Returns:
        The written path and the parity result (``None`` when ``check`` is off).

    Raises:
        ValueError: ``opset < 17``.
        SisgenInputError: ``dynamic_hw`` for an architecture tied to its trained size, or
            ``half`` with ``int8``.
    """
    import onnx

    if opset < 17:
        raise ValueError("opset must be >= 17")
    if half and int8:
        raise SisgenInputError("choose one of half (fp16) and int8")
    multiple = _dynamic_hw_multiple(model) if dynamic_hw else 0
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    form = model.export_form().cpu()
    names, args = _trace_inputs(model, multiple)
    wrapper = _ExportWrapper(form, names, uint8_output).eval()
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        _trace(wrapper, args, names, tmp, opset, optimize,
               _dynamic_shapes(model, args, multiple))
        proto = onnx.load(str(tmp))
        if simplify:
            proto = simplify_graph(proto)
        if half:
            proto = convert_to_fp16(proto)
        meta = export_metadata(model, uint8_output=uint8_output, half=half, dynamic_hw=multiple)
        del proto.metadata_props[:]
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        proto.producer_name = "sisgen"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if int8:
            from .quantize import calibration_feeds, quantize_int8

            quantize_int8(tmp, tmp, calibration_feeds(model) if calibration is None
                          else calibration)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    parity = check_parity(model, file, "onnx", batch=check_batch) if check else None
    return file, parity


def export_metadata(model: SISGenerator, *, uint8_output: bool = False, half: bool = False,
                    dynamic_hw: int = 0) -> dict[str, str]:
    """The ``sisgen.*`` metadata of an export (string values, JSON where structured)."""
    meta = {
        "sisgen.model_name": model.model_name,
        "sisgen.architecture": type(model).__name__,
        "sisgen.config": json.dumps(model.config),
        "sisgen.vocabulary": json.dumps(model.vocabulary.to_dict()) if model.vocabulary else "",
        "sisgen.resolution": json.dumps(list(model.resolution)),
        "sisgen.noise": json.dumps(model.noise_spec()),
        "sisgen.model_hash": model.weights_hash(),
        "sisgen.output": "uint8_nhwc" if uint8_output else "float_nchw",
        "sisgen.precision": "fp16" if half else "fp32",
        "sisgen.dynamic_hw": str(int(dynamic_hw)),
    }
    if model.feature_clusters is not None:
        from sisgen.models.style_features import clusters_to_dict

        meta["sisgen.feature_clusters"] = json.dumps(clusters_to_dict(model.feature_clusters))
    return meta


# ------------------------------------------------------------------------------ tracing
def _dynamic_hw_multiple(model: SISGenerator) -> int:
    multiple = model.dynamic_hw_multiple()
    if not multiple:
        raise SisgenInputError(
            f"{type(model).__name__} ({model.model_name or 'unnamed'}) cannot be exported with "
            "dynamic H and W: its weights are tied to the trained size "
            f"{model.resolution[0]}x{model.resolution[1]} (a linear layer on the spatial "
            "dims, a noise-vector latent or a fixed-size table); export a fixed size instead")
    return int(multiple)


def _trace_inputs(model: SISGenerator, multiple: int) -> tuple[list[str], list[torch.Tensor]]:
    """Names and example tensors to trace with.

    With dynamic H and W the trace runs at two or more blocks of ``multiple`` per side
    (the tracer specializes a dimension that is 1), so tiny models trace at ``2m x 2m``.
    """
    h, w = model.resolution
    size = (max(h, 2 * multiple), max(w, 2 * multiple)) if multiple else (h, w)
    if size == (h, w):
        return used_inputs(model, model.example_inputs(batch_size=1))
    feeds = parity_inputs(model, batch=1, seed=0, size=size)
    names = [n for n in model.input_names if n in feeds]
    return names, [feeds[n] for n in names]


def _dynamic_shapes(model: SISGenerator, args: list[torch.Tensor], multiple: int
                    ) -> tuple[tuple[dict[int, Any], ...]]:
    """The ``dynamic_shapes`` of the wrapper's inputs: batch, and H/W when ``multiple``.

    H and W are declared as ``multiple * k`` so that the exporter knows the sizes divide
    through the architecture's downsampling; spatial axes are the last two of every input
    whose trailing dims are the traced ``(H, W)``.
    """
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    spatial: tuple[Any, Any] | None = None
    size = tuple(args[0].shape[-2:])  # labels [B,H,W] come first
    if multiple:
        hk = torch.export.Dim("height_blocks", min=1, max=MAX_SIDE // multiple)
        wk = torch.export.Dim("width_blocks", min=1, max=MAX_SIDE // multiple)
        spatial = (hk * multiple, wk * multiple) if multiple > 1 else (hk, wk)
    shapes = []
    for a in args:
        dims: dict[int, Any] = {0: batch}
        if spatial is not None and a.dim() >= 3 and tuple(a.shape[-2:]) == size:
            dims.update({a.dim() - 2: spatial[0], a.dim() - 1: spatial[1]})
        shapes.append(dims)
    return (tuple(shapes),)


def _trace(wrapper: nn.Module, args: list[torch.Tensor], names: list[str], path: Path,
           opset: int, optimize: bool, dynamic_shapes: tuple) -> None:
    """Run the dynamo ONNX exporter quietly (it logs absent torchvision ops and more)."""
    quiet_onnx_export(wrapper, args, path, input_names=names,
                      output_names=["generated" if "image" in names else "image"],
                      opset=opset, dynamic_shapes=dynamic_shapes, optimize=optimize)


# --------------------------------------------------------------------------- simplify
def simplify_graph(proto: Any) -> Any:
    """Simplify with onnxslim; on ImportError or any failure warn and return ``proto``."""
    try:
        import onnxslim
    except ImportError:
        warnings.warn("simplify=True needs onnxslim (pip install sisgen[export]); the graph "
                      "is left unsimplified", stacklevel=3)
        return proto
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(proto)
        if slim is None:
            raise RuntimeError("onnxslim returned no model")
        import onnx

        onnx.checker.check_model(slim, full_check=True)  # types too: a bad fold shows here
        return slim
    except Exception as e:  # noqa: BLE001 -- onnxslim fails in many ways; simplifying is optional
        warnings.warn(f"onnxslim failed ({type(e).__name__}: {e}); the graph is left "
                      "unsimplified", stacklevel=3)
        return proto


# ------------------------------------------------------------------------------- fp16
def convert_to_fp16(proto: Any, keep_fp32: frozenset[str] = FP32_OPS) -> Any:
    """Convert an fp32 ONNX model to fp16, keeping ``keep_fp32`` ops (and I/O) in fp32.

    Every float tensor becomes fp16 except graph inputs and outputs, the outputs of kept
    ops, of ``Cast`` nodes (which keep their declared target) and of ops whose schema has
    no fp16 variant; Cast nodes are inserted wherever a consumer wants the other precision
    (a kept op's fp16 inputs, a ``Resize`` scale, the fp16 producer of a graph output).
    Float initializers and ``Constant`` values become fp16 when an fp16 op reads them
    (clipped to the fp16 range).

    Args:
        proto: An ``onnx.ModelProto`` with float32 tensors (no control-flow subgraphs).
        keep_fp32: Op types that run in fp32.

    Returns:
        The converted model (shape-inferred and checked).
    """
    import onnx
    from onnx import TensorProto, helper

    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    graph = proto.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        raise ValueError("fp16 conversion does not handle control-flow subgraphs")
    del graph.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    graph = proto.graph
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    old = {v.name: v.type.tensor_type.elem_type
           for v in (*graph.input, *graph.value_info, *graph.output)}
    old.update({t.name: t.data_type for t in graph.initializer})

    graph_nodes = list(graph.node)
    plans = [_fp16_plan(n, opset, old, keep_fp32) for n in graph_nodes]
    wants_half = {name for n, (kept, fp32_in) in zip(graph_nodes, plans, strict=True)
                  for i, name in enumerate(n.input)
                  if name and old.get(name) == f32 and not kept and i not in fp32_in}
    new: dict[str, int] = dict(old)
    for t in graph.initializer:
        if t.data_type == f32 and t.name in wants_half:
            t.CopyFrom(_half_tensor(t))
            new[t.name] = f16
    for n, (kept, _) in zip(graph_nodes, plans, strict=True):
        for out in n.output:
            if old.get(out) != f32 or kept or n.op_type == "Cast":
                continue
            if n.op_type == "Constant" and out not in wants_half:
                continue
            new[out] = f16
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == f32:
                    a.t.CopyFrom(_half_tensor(a.t))

    nodes: list[Any] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        if new.get(name) not in (f32, f16) or new[name] == to:
            return name
        if (name, to) not in casts:
            out = f"{name}__to_{'fp16' if to == f16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=out, to=to))
            casts[name, to] = out
        return casts[name, to]

    for n, (kept, fp32_inputs) in zip(graph_nodes, plans, strict=True):
        for i, name in enumerate(n.input):
            if name and old.get(name) == f32:
                n.input[i] = cast(name, f32 if kept or i in fp32_inputs else f16)
        nodes.append(n)
    for out in graph.output:
        if new.get(out.name) == f16:  # fp16 producer: rename it, cast back to the fp32 name
            inner = f"{out.name}__fp16"
            for n in nodes:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if o == out.name else o for o in n.input]
            nodes.append(helper.make_node("Cast", [inner], [out.name], name=out.name + "__cast",
                                          to=f32))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _fp16_plan(node: Any, opset: int, types: dict[str, int], keep_fp32: frozenset[str]
               ) -> tuple[bool, set[int]]:
    """``(kept in fp32, indices of float inputs that must stay fp32)`` for one node.

    A node is kept when its op is in ``keep_fp32``, is not a standard op, or its schema
    ties a float input to a type variable without fp16 (``Range``...). An input whose
    schema type is literally ``tensor(float)`` (``Resize``'s scales) stays fp32 alone.
    """
    import onnx

    if node.op_type in keep_fp32 or node.domain not in ("", "ai.onnx"):
        return True, set()
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return True, set()
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    fp32_inputs: set[int] = set()
    for i, name in enumerate(node.input):
        if not name or types.get(name) != onnx.TensorProto.FLOAT or not schema.inputs:
            continue
        formal = schema.inputs[min(i, len(schema.inputs) - 1)].type_str
        if "tensor(float16)" in allowed.get(formal, {formal}):
            continue
        if formal in allowed:
            return True, set()
        fp32_inputs.add(i)
    return False, fp32_inputs


def _half_tensor(t: Any) -> Any:
    """An fp32 TensorProto as fp16 (same name), clipped to the fp16 range."""
    from onnx import numpy_helper

    fmax = float(np.finfo(np.float16).max)
    arr = np.clip(numpy_helper.to_array(t), -fmax, fmax).astype(np.float16)
    return numpy_helper.from_array(arr, t.name)
