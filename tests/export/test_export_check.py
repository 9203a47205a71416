"""fp16 / dynamic-HxW / onnxslim ONNX exports, the parity check and ``sisgen export``."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.models import build_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sisgen.engines.onnx_engine import OnnxEngine  # noqa: E402
from sisgen.export import FORMAT_ARGS, check_parity, export_onnx  # noqa: E402
from sisgen.export.check import parity_inputs, random_label_maps  # noqa: E402
from sisgen.export.onnx import convert_to_fp16  # noqa: E402

SMALL = dict(dataset="toycity", height=32, width=64)


@pytest.fixture(scope="module")
def spade(settle):
    torch.manual_seed(0)
    return settle(build_model("spade", ngf=2, spade_hidden=4, use_edges=True, **SMALL))


def _value_types(proto):
    proto = onnx.shape_inference.infer_shapes(proto)
    g = proto.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _norm_nodes_in_fp32(path, op):
    proto = onnx.load(str(path))
    types = _value_types(proto)
    nodes = [n for n in proto.graph.node if n.op_type == op]
    assert nodes, f"no {op} in the graph"
    for n in nodes:
        for name in (*n.input, *n.output):
            if name:
                assert types[name] == onnx.TensorProto.FLOAT, (op, name)
    return proto, types


# ------------------------------------------------------------------------------ fp16
@pytest.mark.parametrize("name", ["spade", "oasis", "va_spade"])
def test_fp16_parity_and_metadata(name, tmp_path, settle):
    torch.manual_seed(0)
    m = settle(build_model(name, dataset="tiny"))
    path, parity = export_onnx(m, tmp_path / f"{name}16.onnx", half=True, optimize=False)
    assert parity.precision == "fp16" and parity.tol == pytest.approx(2e-2)
    assert parity.passed and parity.max_abs <= 2e-2, parity
    eng = OnnxEngine(path)
    assert eng.metadata["sisgen.precision"] == "fp16"
    if name == "va_spade":  # the VASIS norms keep their BatchNorm: in fp32
        proto, types = _norm_nodes_in_fp32(path, "BatchNormalization")
    else:  # SPADE's BatchNorms are folded into the modulation convs (export_form)
        proto = onnx.load(str(path))
        types = _value_types(proto)
        assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    # inputs and outputs keep their types; the convolutions really run in fp16
    assert {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}["labels"] == \
        onnx.TensorProto.INT64
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in proto.graph.output)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs and all(types[n.input[1]] == onnx.TensorProto.FLOAT16 for n in convs)


def test_fp16_keeps_instance_norm_in_fp32_and_uint8_output(tmp_path, settle):
    torch.manual_seed(0)
    m = settle(build_model("pix2pixhd", dataset="tiny"))
    path, parity = export_onnx(m, tmp_path / "p2p16.onnx", half=True, uint8_output=True,
                               optimize=False)
    assert parity.passed and parity.tol == pytest.approx(2e-2 + 1 / 127.5, abs=1e-5), parity
    _norm_nodes_in_fp32(path, "InstanceNormalization")
    out = OnnxEngine(path)(*m.example_inputs(2, seed=3))
    assert out.dtype == np.uint8 and out.shape == (2, 64, 64, 3)


def test_fp16_converter_on_a_small_graph():
    """Casts go exactly where the precision changes; Resize's scales stay fp32."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("InstanceNormalization", ["c", "s", "b"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest"),
    ]
    inits = [w, scales, numpy_helper.from_array(np.ones(4, np.float32), "s"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    half = convert_to_fp16(model)
    types = _value_types(half)
    by_op = {n.op_type: n for n in half.graph.node if n.op_type != "Cast"}
    assert types[by_op["Conv"].input[1]] == TensorProto.FLOAT16
    assert all(types[i] == TensorProto.FLOAT for i in by_op["InstanceNormalization"].input)
    assert types[by_op["Resize"].input[0]] == TensorProto.FLOAT16
    assert types[by_op["Resize"].input[2]] == TensorProto.FLOAT  # schema: tensor(float)
    assert types["x"] == types["y"] == TensorProto.FLOAT
    assert sum(n.op_type == "Cast" for n in half.graph.node) == 4  # x, IN in, IN out, y
    import onnxruntime as ort

    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    out = ort.InferenceSession(half.SerializeToString()).run(None, {"x": x})[0]
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 2e-2


# ------------------------------------------------------------------------ dynamic HxW
def test_dynamic_hw_two_sizes(spade, tmp_path):
    path, parity = export_onnx(spade, tmp_path / "dyn.onnx", dynamic_hw=True, optimize=False)
    assert parity.passed and parity.runs == 2, parity  # trained size and (H+32, W+64)
    eng = OnnxEngine(path)
    assert eng.metadata["sisgen.dynamic_hw"] == "32"
    form = spade.export_form()
    for size in [(64, 32), (96, 128)]:
        feeds = parity_inputs(spade, batch=1, seed=7, size=size)
        out = eng.run(feeds)
        assert out.shape == (1, 3, *size)
        with torch.inference_mode():
            ref = form(**feeds).numpy()
        assert np.abs(out - ref).max() <= 1e-4


def test_dynamic_hw_refused_where_weights_are_tied_to_the_size(tmp_path):
    z = build_model("spade", ngf=2, spade_hidden=4, z_dim=8, **SMALL)  # z -> linear -> latent
    with pytest.raises(SisgenInputError, match="dynamic H and W"):
        export_onnx(z, tmp_path / "z.onnx", dynamic_hw=True)
    with pytest.raises(SisgenInputError, match="dynamic H and W"):
        build_model("posgen", dataset="tiny").export("onnx", file=tmp_path / "p.onnx",
                                                     dynamic=True)
    for name in ("va_spade", "va_oasis", "clade_icpe"):  # fixed-size tables / statistics
        with pytest.raises(SisgenInputError, match="dynamic H and W"):
            build_model(name, dataset="tiny").export("onnx", file=tmp_path / "v.onnx",
                                                     dynamic=True)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- simplify
def _small_graph():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 18)])


def test_simplify_failure_or_absence_only_warns(monkeypatch):
    from sisgen.export.onnx import simplify_graph

    slim = pytest.importorskip("onnxslim")
    proto = _small_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(simplify_graph(proto).graph.node) == 1  # the Identity is gone

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(slim, "slim", broken)
    with pytest.warns(UserWarning, match="onnxslim failed.*boom"):
        assert simplify_graph(proto) is proto
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # not installed
    with pytest.warns(UserWarning, match="needs onnxslim"):
        assert simplify_graph(proto) is proto


# ------------------------------------------------------------------------ parity check
def test_random_label_maps_are_blobs():
    labels, inst = random_label_maps(5, 2, 32, 64, seed=1)
    assert labels.shape == inst.shape == (2, 32, 64)
    assert (labels == 255).any() and ((inst == 0) == (labels == 255)).all()
    for b in range(2):
        assert 2 <= len(np.unique(labels[b][labels[b] != 255])) <= 5
        # blobs, not noise: most 4-neighbours share the class
        assert (labels[b, :, 1:] == labels[b, :, :-1]).mean() > 0.8
    again, _ = random_label_maps(5, 2, 32, 64, seed=1)
    assert np.array_equal(labels, again)


def test_check_parity_torch_folder_and_detects_a_difference(spade, tmp_path):
    folder = spade.export("torch", file=tmp_path / "folder", check=True)
    res = check_parity(spade, folder, "torch", seeds=(0, 1))
    assert res.passed and res.max_abs == 0.0 and res.runs == 2
    other = build_model("spade", ngf=2, spade_hidden=4, use_edges=True, **SMALL)
    other.save(tmp_path / "other")
    bad = check_parity(spade, tmp_path / "other", "torch")
    assert not bad.passed and bad.max_abs > 1e-2 and "FAILED" in str(bad)


def test_format_args_error_lists_what_the_format_accepts(spade, tmp_path):
    with pytest.raises(SisgenInputError) as ei:
        spade.export("torch", file=tmp_path / "x", half=True)
    assert "does not take half" in str(ei.value)
    assert f"accepts {', '.join(FORMAT_ARGS['torch'])}" in str(ei.value)
    with pytest.raises(SisgenInputError, match="does not take device"):
        spade.export("onnx", file=tmp_path / "x.onnx", device="cuda")
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------------------- CLI
def test_cli_export_check_prints_and_fails_with_exit_1(spade, tmp_path, capsys, monkeypatch):
    from sisgen.cli import main

    spade.save(tmp_path / "m")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(["export", "onnx", "--model", str(tmp_path / "m"), "--out",
                   str(tmp_path / "m16.onnx"), "--half", "--simplify", "--batch", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "max abs diff" in out and "mean abs diff" in out and "fp16" in out
    assert not [w for w in caught if "onnxslim" in str(w.message)]  # simplified fine
    assert OnnxEngine(tmp_path / "m16.onnx").metadata["sisgen.precision"] == "fp16"

    from sisgen.export import check

    monkeypatch.setitem(check.TOLERANCE, "fp32", -1.0)  # nothing can pass
    rc = main(["export", "torch", "--model", str(tmp_path / "m"), "--out",
               str(tmp_path / "t"), "--check"])
    captured = capsys.readouterr()
    assert rc == 1 and "parity check FAILED" in captured.err
    assert (tmp_path / "t" / "model.safetensors").is_file()


def test_cli_export_rejects_arguments_the_format_does_not_take(spade, tmp_path, capsys):
    from sisgen.cli import main

    spade.save(tmp_path / "m")
    rc = main(["export", "torch", "--model", str(tmp_path / "m"), "--dynamic"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not take dynamic" in err and "accepts file, check" in err
