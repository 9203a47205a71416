"""The ``instances`` input (CLADE-ICPE, SAFM) through Generator.prepare, both engines, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sisgen
from sisgen import sources
from sisgen.cli import main
from sisgen.engines import Generator
from sisgen.engines.base import compact_instance_ids
from sisgen.engines.torch_engine import TorchEngine
from sisgen.io import read_rgb
from sisgen.labelmap import LabelMap
from sisgen.models import build_model
from sisgen.models.layers import CLADE

SIZE = (32, 64)


def _icpe_model():
    torch.manual_seed(0)
    m = build_model("clade_icpe", dataset="toycity", ngf=2, height=SIZE[0], width=SIZE[1],
                    num_upsampling_layers="normal")
    for mod in m.modules():  # zero-initialized ICPE convs would hide the position map
        if isinstance(mod, CLADE):
            torch.nn.init.constant_(mod.dist_conv_w.weight, 0.5)
            torch.nn.init.constant_(mod.dist_conv_b.weight, 0.5)
    return m


def _generator(model) -> Generator:
    return Generator(TorchEngine(model, "cpu"), model.vocabulary, model.resolution,
                     model.noise_spec(), model.model_name, "h", model.uses_edges, "torch")


@pytest.fixture(scope="module")
def toy_maps() -> list[LabelMap]:
    src = sources.open("toycity", split="val")
    return [src[i] for i in range(2)]


def test_compact_instance_ids_keep_the_partition():
    inst = np.array([[0, 26001, 26001], [33000, 0, 26005]], np.int32)
    out = compact_instance_ids(inst)
    assert out.dtype == np.int64
    assert np.array_equal(out, [[0, 1, 1], [3, 0, 2]])
    assert np.array_equal(compact_instance_ids(np.zeros((2, 2), np.int32)), np.zeros((2, 2)))


def test_prepare_adds_instances_only_for_engines_that_take_them(toy_maps):
    gen = _generator(_icpe_model())
    assert gen.takes_instances
    labels, edges, noise, instances = gen.prepare(toy_maps, [0, 1])
    assert labels.shape == instances.shape == (2, *SIZE) and instances.dtype == torch.int64
    assert noise is None and edges.shape == (2, 1, *SIZE)
    for lm, got in zip(toy_maps, instances, strict=True):
        want = compact_instance_ids(lm.resized(SIZE).instance)  # nearest resize, compact ids
        assert np.array_equal(got.numpy(), want) and got.max() == len(np.unique(want)) - 1
    # a map without instance ids gets zeros (the model then uses one region per class)
    bare = [LabelMap(lm.semantic) for lm in toy_maps]
    assert gen.prepare(bare, [0, 1])[3].abs().max() == 0
    with_ids, without = gen.generate(toy_maps, [0, 1]), gen.generate(bare, [0, 1])
    assert not np.array_equal(with_ids[0], without[0])  # the instances reach the model
    plain = build_model("clade", dataset="toycity", ngf=2, height=SIZE[0], width=SIZE[1],
                        num_upsampling_layers="normal")
    assert len(_generator(plain).prepare(toy_maps, [0, 1])) == 3


def _cli_generate(model_path, out) -> dict[str, np.ndarray]:
    assert main(["generate", "--model", str(model_path), "--source", "toycity", "--split", "val",
                 "--out", str(out), "--limit", "2", "--writers", "folder",
                 "--image-format", "png", "--batch-size", "2"]) == 0
    return {f.name: read_rgb(f) for f in sorted((out / "folder").rglob("*.png"))
            if f.parent.name == "images"}


def test_cli_generate_clade_icpe_through_torch_and_onnx(tmp_path, toy_maps):
    from sisgen.export import export_onnx

    model = _icpe_model()
    model.save(tmp_path / "m")
    # (the exporter's optimizer only folds constants; skipped to keep the test fast)
    export_onnx(model, tmp_path / "m.onnx", optimize=False, check=False)
    onnx_gen, torch_gen = sisgen.load(tmp_path / "m.onnx"), sisgen.load(tmp_path / "m")
    assert onnx_gen.engine.input_names == ("labels", "edges", "instances")
    assert onnx_gen.takes_instances and torch_gen.takes_instances
    inputs = torch_gen.prepare(toy_maps, [3, 4])
    assert len(inputs) == 4 and inputs[3].max() > 0
    assert np.abs(np.asarray(torch_gen(*inputs)) - np.asarray(onnx_gen(*inputs))).max() <= 1e-4
    a, b = _cli_generate(tmp_path / "m", tmp_path / "a"), _cli_generate(tmp_path / "m.onnx",
                                                                        tmp_path / "b")
    assert len(a) == 2 and a.keys() == b.keys()
    for key, img in a.items():
        assert np.abs(img.astype(int) - b[key].astype(int)).max() <= 1


def test_cli_generate_safm_torch(tmp_path, toy_maps):
    torch.manual_seed(0)
    model = build_model("safm", dataset="toycity", ngf=2, hidden=4, shape_hidden=3,
                        height=SIZE[0], width=SIZE[1], max_contour_points=256)
    model.save(tmp_path / "m")
    gen = sisgen.load(tmp_path / "m")
    labels, edges, noise, instances = gen.prepare(toy_maps, [0, 1])
    assert noise is None and instances.max() > 0
    with_ids = np.asarray(gen(labels, edges, noise, instances))
    assert not np.array_equal(with_ids, np.asarray(gen(labels, edges, noise,
                                                       torch.zeros_like(instances))))
    assert len(_cli_generate(tmp_path / "m", tmp_path / "out")) == 2
