"""pix2pixHD instance-wise features end to end: cluster after training, sample per object.

The trainer clusters the encoder's per-object features of the training set into each
class's centres; save/load and export carry them; ``Generator.prepare`` draws one centre per
object from the sample's seed, and ``sisgen generate`` runs such a model.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sisgen import load
from sisgen.cli import main
from sisgen.engines.base import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap
from sisgen.models import build_model, load_model
from sisgen.models.style_features import clusters_from_dict
from sisgen.training import Trainer, load_config

H, W = 32, 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("pix2pixhd", dataset="toycity", ngf=4, n_downsample_global=2,
                    n_blocks_global=1, feat_num=3, height=H, width=W).eval()
    # four well-separated centres for classes 1 and 2, one for class 3; none for the rest
    m.feature_clusters = {1: np.array([[-0.9, 0, 0], [0.9, 0, 0], [0, -0.9, 0], [0, 0.9, 0]],
                                      np.float32),
                          2: np.array([[0, 0, -0.5], [0, 0, 0.5], [0.5, 0.5, 0.5], [-0.5] * 3],
                                      np.float32),
                          3: np.array([[0.1, 0.2, 0.3]], np.float32)}
    return m


def _labelmap(mark: np.ndarray | None = None) -> LabelMap:
    sem = np.zeros((H, W), np.uint8)
    sem[:, :20], sem[:, 20:40], sem[:, 40:] = 1, 2, 3
    inst = np.zeros((H, W), np.int32)
    inst[:16, :20], inst[16:, :20] = 1, 2  # two class-1 objects; class 2 and 3 are regions
    meta = {} if mark is None else {"noise_mask": mark}
    return LabelMap(sem, inst, meta=meta)


def test_features_are_one_centre_per_object_drawn_from_the_seed(model):
    gen = Generator.from_model(TorchEngine(model, "cpu"), model)
    assert gen.takes_features and not gen.takes_instances
    labels, edges, noise, instances, feats = gen.prepare([_labelmap()] * 2, [5, 5])
    assert noise is None and instances is None and feats.shape == (2, 3, H, W)
    assert torch.equal(feats[0], feats[1])  # the seed decides
    f = feats[0].permute(1, 2, 0).numpy()
    for region, cls in (((slice(0, 16), slice(0, 20)), 1), ((slice(16, H), slice(0, 20)), 1),
                        ((slice(None), slice(20, 40)), 2), ((slice(None), slice(40, W)), 3)):
        values = np.unique(f[region].reshape(-1, 3), axis=0)
        assert len(values) == 1  # constant over the object
        assert any(np.allclose(values[0], c) for c in model.feature_clusters[cls])
    others = [gen.prepare([_labelmap()], [s])[4] for s in range(6)]
    assert any(not torch.equal(others[0], o) for o in others[1:])
    out = gen.generate([_labelmap()], [5])
    assert out[0].shape == (H, W, 3) and out[0].dtype == np.uint8


def test_marked_region_alone_takes_the_new_style(model):
    gen = Generator.from_model(TorchEngine(model, "cpu"), model)
    mark = np.zeros((H, W), bool)
    mark[:, 20:40] = True  # class 2
    seeds = next((s for s in range(1, 50) if not torch.equal(
        gen.prepare([_labelmap()], [s])[4][:, :, :, 20:40],
        gen.prepare([_labelmap()], [0])[4][:, :, :, 20:40])), None)
    assert seeds is not None
    base = gen.prepare([_labelmap()], [0])[4]
    new = gen.prepare([_labelmap()], [seeds])[4]
    mixed = gen.prepare([_labelmap(mark)], [seeds], base_seeds=[0])[4]
    assert torch.equal(mixed[..., 20:40], new[..., 20:40])
    assert torch.equal(mixed[..., :20], base[..., :20])
    assert torch.equal(mixed[..., 40:], base[..., 40:])


def test_without_clusters_prepare_says_how_to_get_them(model):
    bare = build_model("pix2pixhd", **model.config).eval()
    gen = Generator.from_model(TorchEngine(bare, "cpu"), bare)
    with pytest.raises(ValueError, match="feature clusters"):
        gen.prepare([_labelmap()], [0])


def test_clusters_survive_save_load_and_onnx_export(model, tmp_path):
    pytest.importorskip("onnxruntime")
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.feature_clusters.keys() == model.feature_clusters.keys()
    for k, v in model.feature_clusters.items():
        np.testing.assert_array_equal(back.feature_clusters[k], v)
    bare = build_model("pix2pixhd", **model.config)
    bare.load_state_dict(model.state_dict())
    assert back.weights_hash() == model.weights_hash() != bare.weights_hash()

    assert main(["export", "onnx", "--model", str(tmp_path / "m"),
                 "--out", str(tmp_path / "m.onnx")]) == 0
    torch_gen, onnx_gen = load(tmp_path / "m"), load(tmp_path / "m.onnx")
    assert onnx_gen.feature_clusters.keys() == model.feature_clusters.keys()
    a = torch_gen.generate([_labelmap()], [3])[0].astype(int)
    b = onnx_gen.generate([_labelmap()], [3])[0].astype(int)
    assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize("bad, problem", [
    ([1, 2], "map class ids"),
    ({"x": [[0.0]]}, "not a class id"),
    ({"1": []}, "non-empty"),
    ({"1": [[0.0, 1.0]], "2": [[0.0]]}, "differ in length"),
    ({"1": [[float("nan")]]}, "finite"),
])
def test_malformed_clusters_name_the_file(bad, problem):
    with pytest.raises(SisgenInputError, match=problem) as e:
        clusters_from_dict(bad, "m/config.json")
    assert "m/config.json" in str(e.value)


def test_training_clusters_the_encoder_features_and_generate_uses_them(tmp_path):
    cfg = load_config("toycity_pix2pixhd_tiny", [
        "steps=2", "source.length=6", "batch_size=2", "height=64", "width=64",
        "sample_every=0", "validate=false", f"out_dir={tmp_path / 'run'}", "log_every=1",
        "checkpoint_every=100", "ema_bn_batches=1", "threads=1"])
    cfg = dataclasses.replace(cfg, model_args={"ngf": 4, "n_downsample_global": 2,
                                               "n_blocks_global": 1, "feat_num": 3},
                              discriminator={**cfg.discriminator, "ndf": 4, "num_d": 1})
    torch.manual_seed(0)
    model_dir = Trainer(cfg, progress=False).fit()
    saved = json.loads((model_dir / "config.json").read_text())["feature_clusters"]
    assert saved and all(len(c[0]) == 3 and 1 <= len(c) <= 10 for c in saved.values())
    # every clustered class is a ToyCity class present in the training maps
    assert {int(k) for k in saved} <= set(range(10))
    # restyling cars is allowed: the features are the per-object style
    rc = main(["generate", "--model", str(model_dir), "--source", "toycity", "--split", "val",
               "--out", str(tmp_path / "out"), "--limit", "2", "--writers", "folder",
               "--samples-per-map", "2", "--recipe", "edits: [{op: resample_noise, class: car}]"])
    assert rc == 0
    manifest = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text()
                .splitlines()]
    assert sum(r.get("status") == "ok" for r in manifest) == 4, manifest
