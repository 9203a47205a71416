"""Engines: seeded noise, the Generator wrapper and the uint8 conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sisgen
from sisgen.engines import Generator, images_to_uint8
from sisgen.engines.torch_engine import TorchEngine
from sisgen.models import build_model
from sisgen.noise import draw_noise, noise_from_seeds

SPEC = {"shape": [6], "distribution": "normal"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("spade", dataset="toycity", ngf=4, spade_hidden=8, z_dim=8,
                       height=32, width=64).eval()


@pytest.fixture(scope="module")
def generator(model) -> Generator:
    return Generator(TorchEngine(model, "cpu"), model.vocabulary, model.resolution,
                     model.noise_spec(), model.model_name, model.weights_hash(),
                     model.uses_edges, backend="torch")


def labelmap(h: int, w: int, seed: int) -> sisgen.LabelMap:
    rng = np.random.default_rng(seed)
    sem = rng.integers(0, 10, (h // 4 + 1, w // 4 + 1)).repeat(4, 0).repeat(4, 1)[:h, :w]
    inst = (np.arange(h * w).reshape(h, w) // (w * 8)).astype(np.int32)
    return sisgen.LabelMap(sem.astype(np.uint8), inst, {"id": f"s{seed}"})


# -------------------------------------------------------------------------------- noise
def test_noise_from_seeds_deterministic_and_per_seed():
    a = noise_from_seeds(SPEC, [3, 5])
    b = noise_from_seeds(SPEC, [3, 5])
    assert a.shape == (2, 6) and a.dtype == torch.float32
    assert torch.equal(a, b)
    # the noise of seed 5 does not depend on what else is in the batch
    assert torch.equal(noise_from_seeds(SPEC, [5])[0], a[1])
    assert torch.equal(noise_from_seeds(SPEC, [7, 5, 3])[1], a[1])
    assert torch.equal(noise_from_seeds(SPEC, [7, 5, 3])[2], a[0])
    assert not torch.allclose(a[0], a[1])
    # repeated seeds give repeated noise
    rep = noise_from_seeds(SPEC, [4, 4])
    assert torch.equal(rep[0], rep[1])


def test_noise_is_standard_normal():
    x = noise_from_seeds({"shape": [1000]}, [0])
    assert abs(float(x.mean())) < 0.15
    assert abs(float(x.std()) - 1.0) < 0.1


def test_noise_multidim_and_absent():
    x = noise_from_seeds({"shape": [2, 3, 4], "distribution": "normal"}, [1, 2])
    assert x.shape == (2, 2, 3, 4)
    assert noise_from_seeds({}, [1, 2]) is None
    assert noise_from_seeds({"shape": []}, [1]) is None
    with pytest.raises(ValueError, match="uniform"):
        noise_from_seeds({"shape": [2], "distribution": "uniform"}, [1])


def test_model_sample_noise_uses_seeds(model):
    assert torch.equal(model.sample_noise([9]), noise_from_seeds(model.noise_spec(), [9]))


def test_noise_functions_still_importable_from_engines():
    import sisgen.engines
    import sisgen.engines.base

    assert sisgen.engines.noise_from_seeds is noise_from_seeds
    assert sisgen.engines.base.noise_from_seeds is noise_from_seeds
    assert sisgen.engines.base.draw_noise is draw_noise


# --------------------------------------------------------------------------- uint8 images
def test_images_to_uint8():
    img = torch.tensor([-1.0, 1.0, 0.0, -2.0, 2.0, 0.5]).view(1, 3, 1, 2)
    out = images_to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 2, 3)
    # NCHW -> NHWC: pixel 0 is channels (-1, 0, 2), pixel 1 is (1, -2, 0.5)
    assert out[0, 0, 0].tolist() == [0, 128, 255]
    assert out[0, 0, 1].tolist() == [255, 0, 191]
    same = images_to_uint8(img.numpy())
    assert np.array_equal(same, out)
    already = np.zeros((1, 2, 2, 3), np.uint8)
    assert images_to_uint8(already) is already


# ------------------------------------------------------------------------------ Generator
def test_generate_returns_uint8_images(generator):
    lms = [labelmap(32, 64, 0), labelmap(32, 64, 1)]
    imgs = generator.generate(lms, seeds=[3, 5])
    assert len(imgs) == 2
    for im in imgs:
        assert im.shape == (32, 64, 3) and im.dtype == np.uint8
    assert not np.array_equal(imgs[0], imgs[1])
    assert imgs[0].std() > 0


def test_generate_matches_model_and_seed(generator, model):
    lm = labelmap(32, 64, 2)
    img = generator.generate([lm], seeds=[5])[0]
    labels = torch.from_numpy(lm.semantic.astype(np.int64))[None]
    edges = torch.from_numpy(lm.edges())[None, None]
    with torch.no_grad():
        ref = images_to_uint8(model(labels, edges, model.sample_noise([5])))[0]
    assert np.abs(img.astype(int) - ref.astype(int)).max() <= 1
    # same seed, same image, whatever else is in the batch; other seed, other image
    again = generator.generate([labelmap(32, 64, 9), lm], seeds=[3, 5])[1]
    assert np.abs(again.astype(int) - img.astype(int)).max() <= 1
    other = generator.generate([lm], seeds=[6])[0]
    assert np.abs(other.astype(int) - img.astype(int)).max() > 5


def test_generate_resizes_other_sizes(generator):
    small = labelmap(16, 32, 4)
    big = labelmap(64, 128, 4)
    imgs = generator.generate([small, big], seeds=[0, 0])
    assert [im.shape for im in imgs] == [(32, 64, 3), (32, 64, 3)]
    labels, edges, noise = generator.prepare([small, big], [0, 1])
    assert labels.shape == (2, 32, 64) and labels.dtype == torch.int64
    assert edges.shape == (2, 1, 32, 64)
    assert noise.shape == (2, 8)
    assert torch.equal(labels[0], torch.from_numpy(small.resized((32, 64)).semantic).long())
    # the label map itself is not modified
    assert small.shape == (16, 32)


def test_generate_default_seeds_and_seed_count(generator):
    lms = [labelmap(32, 64, 0), labelmap(32, 64, 1)]
    default = generator.generate(lms)
    explicit = generator.generate(lms, seeds=[0, 1])
    assert all(np.array_equal(a, b) for a, b in zip(default, explicit, strict=True))
    with pytest.raises(ValueError, match="seed"):
        generator.generate(lms, seeds=[1])


def test_torch_engine_runs_export_form_without_touching_model(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    eng = TorchEngine(model, "cpu")
    assert eng.model is not model and not eng.model.training
    labels, edges, noise = model.example_inputs(2)
    out = eng(labels, edges, noise)
    assert out.shape == (2, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(out, model(labels, edges, noise))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def tiny_onnx(path) -> str:
    """A one-node ONNX graph (``out = labels + 1``) to open sessions on."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["labels", "one"], ["out"])], "tiny",
        [helper.make_tensor_value_info("labels", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def test_onnx_threads_follow_the_affinity_mask(tmp_path):
    pytest.importorskip("onnxruntime")
    from sisgen.engines.onnx_engine import OnnxEngine, usable_cpus

    path = tiny_onnx(tmp_path / "tiny.onnx")
    default = OnnxEngine(path, providers=["cpu"])
    assert default.threads == usable_cpus() >= 1
    options = default.session.get_session_options()
    assert options.intra_op_num_threads == usable_cpus()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    one = OnnxEngine(path, providers=["cpu"], threads=1, spin=True)
    assert one.threads == 1
    assert one.session.get_session_options().intra_op_num_threads == 1
    out = one.run({"labels": np.zeros((3, 2), np.float32)})
    np.testing.assert_array_equal(out, np.ones((3, 2), np.float32))
