"""ONNX export: onnxruntime parity, dynamic batch, metadata, loading through sisgen.load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sisgen
from sisgen.engines import images_to_uint8
from sisgen.engines.onnx_engine import OnnxEngine
from sisgen.errors import SisgenInputError
from sisgen.models import build_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sisgen.export import export_onnx  # noqa: E402

META_KEYS = ("sisgen.resolution", "sisgen.vocabulary", "sisgen.noise", "sisgen.model_hash",
             "sisgen.model_name")


@pytest.fixture(scope="module")
def spade(tmp_path_factory, settle):
    torch.manual_seed(0)
    m = settle(build_model("spade", dataset="toycity", ngf=4, spade_hidden=8, z_dim=8,
                           height=32, width=64))
    path, parity = export_onnx(m, tmp_path_factory.mktemp("spade") / "spade.onnx")
    return m, path, parity


@pytest.fixture(scope="module")
def clade(tmp_path_factory, settle):
    torch.manual_seed(1)
    m = settle(build_model("clade", dataset="toycity", ngf=4, z_dim=0, use_edges=False,
                           height=32, width=64))
    path, parity = export_onnx(m, tmp_path_factory.mktemp("clade") / "clade.onnx",
                               check_batch=3)
    return m, path, parity


@pytest.fixture(params=["spade", "clade"])
def exported(request):
    return request.getfixturevalue(request.param)


def test_export_writes_file_and_reports_parity(exported):
    m, path, parity = exported
    assert path.is_file() and path.suffix == ".onnx"
    assert not list(path.parent.glob(".*.tmp"))
    assert parity is not None and parity.max_abs <= 1e-4
    assert parity.batch in (2, 3)


def test_graph_inputs(spade, clade):
    assert OnnxEngine(spade[1]).input_names == ("labels", "edges", "noise")
    assert OnnxEngine(clade[1]).input_names == ("labels",)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_parity_dynamic_batch(exported, batch):
    m, path, _ = exported
    labels, edges, noise = m.example_inputs(batch_size=batch, seed=42)
    labels[:, :4] = 255  # ignore pixels go through the graph too
    eng = OnnxEngine(path, providers=["CPUExecutionProvider"])
    out = eng(labels, edges, noise)
    assert out.shape == (batch, 3, 32, 64) and out.dtype == np.float32
    with torch.no_grad():
        ref = m.eval()(labels, edges if m.uses_edges else None, noise).numpy()
    assert np.abs(out - ref).max() <= 1e-4
    assert out.std() > 0


def test_metadata(exported):
    m, path, _ = exported
    meta = OnnxEngine(path).metadata
    for key in META_KEYS:
        assert key in meta
    assert json.loads(meta["sisgen.resolution"]) == [32, 64]
    assert json.loads(meta["sisgen.noise"]) == m.noise_spec()
    assert json.loads(meta["sisgen.vocabulary"])["name"] == "toycity"
    assert meta["sisgen.model_hash"] == m.weights_hash()
    assert meta["sisgen.model_name"] == m.model_name
    assert json.loads(meta["sisgen.config"]) == m.config
    assert meta["sisgen.output"] == "float_nchw"


def test_export_leaves_model_usable(spade):
    m, _, _ = spade
    from torch.nn.utils import parametrize

    assert parametrize.is_parametrized(m.head_0.conv_0)
    saved = {k: v.clone() for k, v in m.state_dict().items()}
    try:
        m.train()
        out = m(*m.example_inputs(1))
        out.sum().backward()
        assert m.head_0.conv_0.parametrizations.weight.original.grad is not None
    finally:  # the module-scoped model must stay as exported for the other tests
        m.zero_grad(set_to_none=True)
        m.load_state_dict(saved)
        m.eval()


def test_sisgen_load_onnx_matches_torch(exported, tmp_path):
    m, path, _ = exported
    gen = sisgen.load(path)
    assert gen.backend == "onnxruntime"
    assert gen.vocabulary.name == "toycity"
    assert gen.vocabulary.ids == m.vocabulary.ids
    assert gen.vocabulary.names == m.vocabulary.names
    assert gen.resolution == (32, 64)
    assert gen.noise_spec == m.noise_spec()
    assert gen.uses_edges == m.uses_edges
    assert gen.model_name == m.model_name
    assert gen.model_hash == m.weights_hash()

    torch_gen = sisgen.load(m.save(tmp_path / "model"))
    rng = np.random.default_rng(0)
    lms = []
    for i in range(2):
        sem = rng.integers(0, 10, (4, 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
        lms.append(sisgen.LabelMap(sem, meta={"id": str(i)}))
    a = gen.generate(lms, seeds=[3, 4])
    b = torch_gen.generate(lms, seeds=[3, 4])
    for x, y in zip(a, b, strict=True):
        assert x.shape == (32, 64, 3) and x.dtype == np.uint8
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    # float outputs on the same prepared inputs
    inputs = torch_gen.prepare(lms, [3, 4])
    with torch.no_grad():
        ref = torch_gen(*inputs).numpy()
    assert np.abs(gen(*inputs) - ref).max() <= 1e-4


def test_uint8_output(tmp_path):
    torch.manual_seed(2)
    m = build_model("clade", dataset="toycity", ngf=4, z_dim=8, use_edges=True,
                    height=32, width=64).eval()
    path, parity = export_onnx(m, tmp_path / "u8.onnx", uint8_output=True, check_batch=2)
    assert parity.max_abs <= 1.0 / 127.5 + 1e-6
    eng = OnnxEngine(path)
    assert eng.metadata["sisgen.output"] == "uint8_nhwc"
    labels, edges, noise = m.example_inputs(batch_size=3, seed=5)
    out = eng(labels, edges, noise)
    assert out.dtype == np.uint8 and out.shape == (3, 32, 64, 3)
    with torch.no_grad():
        ref = images_to_uint8(m(labels, edges, noise))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    gen = sisgen.load(path)
    imgs = gen.generate([sisgen.LabelMap(labels[0].numpy().astype(np.uint8))], seeds=[5])
    assert imgs[0].shape == (32, 64, 3) and imgs[0].dtype == np.uint8
    assert np.abs(imgs[0].astype(int) - ref[0].astype(int)).max() <= 1


def test_non_sisgen_onnx_file(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    with pytest.raises(SisgenInputError, match="plain.onnx") as ei:
        sisgen.load(path)
    assert "metadata" in str(ei.value)


def test_missing_or_garbage_onnx_file(tmp_path):
    with pytest.raises(SisgenInputError, match="missing.onnx"):
        sisgen.load(tmp_path / "missing.onnx")
    with pytest.raises(SisgenInputError, match="missing.onnx"):
        OnnxEngine(tmp_path / "missing.onnx")
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not an onnx model at all")
    with pytest.raises(SisgenInputError, match="garbage.onnx"):
        sisgen.load(bad)


def test_opset_too_low(tmp_path):
    m = build_model("clade", dataset="toycity", ngf=4, z_dim=0, height=32, width=64)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(m, tmp_path / "x.onnx", opset=13)
    assert not (tmp_path / "x.onnx").exists()


def test_export_api_formats_and_argument_errors(tmp_path):
    import sisgen
    from sisgen.errors import SisgenInputError
    from sisgen.models import build_model

    m = build_model("clade", dataset="tiny")
    path = m.export(format="onnx", file=tmp_path / "m.onnx", optimize=False)
    assert sisgen.load(path).model_name == "clade"
    folder = m.export(format="torch", file=tmp_path / "folder")
    assert (folder / "model.safetensors").is_file()
    with pytest.raises(SisgenInputError, match="accepts file"):
        m.export(format="torch", file=tmp_path / "x", opset=18)
    from sisgen.export import FORMAT_ARGS

    with pytest.raises(SisgenInputError, match=f"available: {', '.join(sorted(FORMAT_ARGS))}"):
        m.export(format="coreml")
