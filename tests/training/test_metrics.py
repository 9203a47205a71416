"""Metrics: Fréchet distance, FID plumbing, FID Inception layout, mIoU, LPIPS, VASIS ICV, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sisgen import sources
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap
from sisgen.models import build_model
from sisgen.training.metrics import (
    FeatureStats,
    available_metrics,
    compute_metrics,
    frechet_distance,
)
from sisgen.training.metrics.diversity import LPIPS, load_lpips
from sisgen.training.metrics.inception import (
    FIDInceptionV3,
    load_inception,
    resize_bilinear_tf1,
)
from sisgen.training.metrics.segmentation import ConfusionMatrix
from sisgen.training.metrics.variation import IntraClassVariation


def tiny_model(height: int = 32, width: int = 64):
    return build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4,
                       height=height, width=width, num_upsampling_layers="normal")


@pytest.fixture(scope="module")
def toy_gen() -> Generator:
    m = tiny_model()
    return Generator(TorchEngine(m, "cpu"), m.vocabulary, (32, 64), m.noise_spec(),
                     m.model_name, "testhash", m.uses_edges, backend="torch")


def _random_orthogonal(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# ------------------------------------------------------------------------- Fréchet
def test_frechet_matches_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected,
                                                                                 rel=1e-10)
    # zero variances on some axes (singular covariances) need no regularization
    s1[:2] = 0
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected,
                                                                                 rel=1e-9)


def test_frechet_matches_closed_form_for_commuting_covariances():
    q = _random_orthogonal(6, 1)
    a, b = np.linspace(0.5, 4, 6), np.linspace(3, 0.2, 6)
    mu1, mu2 = np.zeros(6), np.full(6, 0.5)
    d = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert d == pytest.approx(6 * 0.25 + np.sum(a + b - 2 * np.sqrt(a * b)), rel=1e-9)
    sigma = q @ np.diag(a) @ q.T
    assert frechet_distance(mu1, sigma, mu1, sigma) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(0.0, [[4.0]], 1.0, [[1.0]]) == pytest.approx(1 + 4 + 1 - 4)


def test_feature_stats_stream_equals_batch_statistics(tmp_path):
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(103, 7))
    stats = FeatureStats()
    for s, e in ((0, 1), (1, 40), (40, 41), (41, 103)):
        stats.update(torch.from_numpy(x[s:e]))
    assert stats.count == 103
    np.testing.assert_allclose(stats.mean, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), atol=1e-12)
    back = FeatureStats.load(stats.save(tmp_path / "ref.npz"))
    np.testing.assert_allclose(back.cov, stats.cov)
    with pytest.raises(SisgenInputError, match="no such FID statistics"):
        FeatureStats.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="dimension"):
        stats.update(np.zeros((2, 3)))


# ----------------------------------------------------------------------------- FID
class TinyFeatures(nn.Module):
    """A fixed random conv + pooling: a stand-in feature space for FID plumbing tests."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x.float() / 255.0))
        return torch.cat([y.mean((2, 3)), y.amax((2, 3))], 1)


def _image_set(n: int, seed: int) -> tuple[list[LabelMap], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    maps = [LabelMap(rng.integers(0, 3, (16, 16)).astype(np.uint8)) for _ in range(n)]
    images = [rng.integers(0, 200, (16, 16, 3)).astype(np.uint8) for _ in range(n)]
    return maps, images


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_a_shift():
    maps, images = _image_set(40, 3)
    ext = TinyFeatures()
    same = compute_metrics(["fid"], labelmaps=maps, images=images, photos=images,
                           feature_extractor=ext, batch_size=16)
    assert same["fid"] == pytest.approx(0.0, abs=1e-8)
    assert same["fid_images"] == same["fid_real_images"] == same["images"] == 40
    shifted = [np.clip(im.astype(int) + 50, 0, 255).astype(np.uint8) for im in images]
    small = compute_metrics("fid", labelmaps=maps, images=images, photos=shifted,
                            feature_extractor=ext)["fid"]
    big = compute_metrics("fid", labelmaps=maps, images=images,
                          photos=[np.full_like(im, 255) - im for im in images],
                          feature_extractor=ext)["fid"]
    assert 0 < small < big


def test_fid_reference_statistics_round_trip(tmp_path):
    maps, images = _image_set(12, 4)
    ext = TinyFeatures()
    ref = tmp_path / "real.npz"
    a = compute_metrics("fid", labelmaps=maps, images=images, photos=images[::-1],
                        feature_extractor=ext, fid_save_reference=ref)
    b = compute_metrics("fid", labelmaps=maps, images=images, feature_extractor=ext,
                        fid_reference=ref)  # no photos needed any more
    assert b["fid"] == pytest.approx(a["fid"], rel=1e-9)
    with pytest.raises(SisgenInputError, match="real photos"):
        compute_metrics("fid", labelmaps=maps, images=images, feature_extractor=ext)


def test_fid_without_weights_names_the_file():
    maps, images = _image_set(2, 5)
    with pytest.raises(SisgenInputError, match="pt_inception-2015-12-05-6726825d.pth"):
        compute_metrics("fid", labelmaps=maps, images=images, photos=images)


# ------------------------------------------------------------------ FID Inception
#: Names and shapes in the public pt_inception-2015-12-05-6726825d.pth (from pytorch-fid /
#: torch-fidelity's network definitions: torchvision Inception3 names, 1008 classes).
PUBLIC_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_3b_1x1.conv.weight": (80, 64, 1, 1),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch3x3dbl_3.bn.weight": (96,),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_3.conv.weight": (192, 128, 7, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3a.conv.weight": (384, 384, 1, 3),
    "Mixed_7c.branch_pool.bn.running_mean": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


@pytest.fixture(scope="module")
def inception() -> FIDInceptionV3:
    torch.manual_seed(0)
    return FIDInceptionV3()


def test_inception_state_dict_has_the_public_layout(inception):
    shapes = {k: tuple(v.shape) for k, v in inception.state_dict().items()}
    for key, shape in PUBLIC_KEYS.items():
        assert shapes.get(key) == shape, key
    assert not any(k.startswith("AuxLogits") for k in shapes)
    assert sum(k.endswith("conv.weight") for k in shapes) == 94  # Inception-v3's 94 convs


def test_inception_forward_gives_pool3_features(inception):
    x = torch.randint(0, 256, (2, 3, 40, 60), dtype=torch.uint8)
    feats = inception(x)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # after ReLU + average pool


def test_inception_preprocessing_protocols():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 299, 299)
    a = FIDInceptionV3("pytorch-fid").preprocess(x)[0, :, 0, 0]
    b = FIDInceptionV3("torch-fidelity").preprocess(x)[0, :, 0, 0]
    torch.testing.assert_close(a, torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]))
    torch.testing.assert_close(b, torch.tensor([-1.0, 0.0, 127 / 128]))
    # TF1 bilinear: source coordinate i * in / out, no half-pixel offset, edge clamped
    row = torch.tensor([0.0, 8.0]).view(1, 1, 1, 2)
    out = resize_bilinear_tf1(row, (1, 4))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 4.0, 8.0, 8.0]))
    with pytest.raises(ValueError, match="protocol"):
        FIDInceptionV3("tf2")


def test_load_inception_reads_the_weights_file(tmp_path, inception):
    state = {k: v for k, v in inception.state_dict().items()
             if not k.endswith("num_batches_tracked")}  # the public file predates the buffer
    state["Conv2d_1a_3x3.bn.running_mean"] = torch.full((32,), 0.25)
    torch.save(state, tmp_path / "pt_inception.pth")
    net = load_inception(tmp_path / "pt_inception.pth", protocol="torch-fidelity")
    assert net.protocol == "torch-fidelity"
    assert torch.equal(net.Conv2d_1a_3x3.bn.running_mean, torch.full((32,), 0.25))
    del state["fc.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(SisgenInputError, match="missing: fc.bias"):
        load_inception(tmp_path / "bad.pth")
    with pytest.raises(SisgenInputError, match="no such Inception weights"):
        load_inception(tmp_path / "nope.pth")


# -------------------------------------------------------------------------- mIoU
def test_confusion_matrix_hand_cases():
    gt = np.array([[0, 0, 1, 1]])
    perfect = ConfusionMatrix()
    perfect.update(gt, gt)
    assert perfect.miou() == 1.0 and perfect.pixel_accuracy() == 1.0

    swapped = ConfusionMatrix()
    swapped.update(1 - gt, gt)
    assert swapped.miou() == 0.0 and swapped.pixel_accuracy() == 0.0

    partial = ConfusionMatrix()
    partial.update(np.array([[0, 1, 1, 1]]), gt)
    assert partial.class_iou() == {0: 0.5, 1: pytest.approx(2 / 3)}
    assert partial.miou() == pytest.approx(7 / 12) and partial.pixel_accuracy() == 0.75

    ignored = ConfusionMatrix()  # ignored ground truth counts nowhere, whatever is predicted
    ignored.update(np.array([[0, 5, 5, 1]]), np.array([[0, 255, 255, 1]]))
    assert ignored.miou() == 1.0 and ignored.pixel_accuracy() == 1.0
    assert set(ignored.class_iou()) == {0, 1}

    absent = ConfusionMatrix()  # class 7 only predicted: IoU 0 and counted; 2..6 absent
    absent.update(np.array([[0, 7]]), np.array([[0, 0]]))
    assert absent.class_iou() == {0: 0.5, 7: 0.0}
    assert absent.miou() == 0.25
    assert np.isnan(ConfusionMatrix().miou())


class _RedChannelSegmenter(nn.Module):
    """Predicts class ``round(red / step)``: one-hot logits of a channel chosen by colour."""

    def __init__(self, classes: int, step: float):
        super().__init__()
        self.classes = classes
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.round(x[:, 0] * 255.0 / self.step).long().clamp(0, self.classes - 1)
        return torch.nn.functional.one_hot(idx, self.classes).permute(0, 3, 1, 2).float()


def test_miou_with_a_torchscript_segmenter_and_a_remap(tmp_path):
    path = tmp_path / "seg.pt"
    torch.jit.script(_RedChannelSegmenter(19, 10.0)).save(str(path))
    # label maps in Cityscapes labelIds; images whose red channel encodes the trainId
    label_ids = np.array([7, 8, 11, 26, 24, 23])  # road sidewalk building car person sky
    train_ids = np.array([0, 1, 2, 13, 11, 10])
    rng = np.random.default_rng(0)
    maps, images = [], []
    for _ in range(4):
        k = rng.integers(0, len(label_ids), (8, 12))
        sem = label_ids[k].astype(np.uint8)
        sem[0, :3] = 255
        maps.append(LabelMap(sem))
        img = np.zeros((8, 12, 3), np.uint8)
        img[..., 0] = train_ids[k] * 10
        images.append(img)
    opts = dict(segmenter=path, seg_mean=(0, 0, 0), seg_std=(1, 1, 1))
    good = compute_metrics(["miou"], labelmaps=maps, images=images,
                           remap="cityscapes->cityscapes_trainid", **opts)
    assert good["miou"] == 1.0 and good["pixel_accuracy"] == 1.0
    assert set(good["class_iou"]) == {"road", "sidewalk", "building", "car", "person", "sky"}
    raw = compute_metrics(["miou"], labelmaps=maps, images=images, **opts)  # ids disagree
    assert raw["miou"] == 0.0 and raw["pixel_accuracy"] == 0.0
    with pytest.raises(SisgenInputError, match="segmenter"):
        compute_metrics(["miou"], labelmaps=maps, images=images)


def test_miou_segmenter_file_normalisation_options_then_sidecar_then_imagenet(tmp_path):
    from sisgen.vocab import ClassInfo, Vocabulary

    conv = nn.Conv2d(3, 3, 1, bias=False)  # logit c = normalised colour channel c
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3)[:, :, None, None])
    path = tmp_path / "seg.pt"
    torch.jit.script(conv.eval()).save(str(path))
    grey = [np.full((4, 4, 3), 128, np.uint8)]
    red, blue = [LabelMap(np.zeros((4, 4), np.uint8))], [LabelMap(np.full((4, 4), 2, np.uint8))]

    def miou(maps, **opts):
        return compute_metrics(["miou"], labelmaps=maps, images=grey, segmenter=path,
                               **opts)["miou"]

    # no sidecar, nothing given: ImageNet statistics make grey bluest
    assert miou(blue) == 1.0 and miou(red) == 0.0
    vocab = Vocabulary("rgb", [ClassInfo(i, n, c) for i, n, c in
                               ((0, "red", (255, 0, 0)), (1, "green", (0, 255, 0)),
                                (2, "blue", (0, 0, 255)))])
    meta = {"format": "sisgen-segmenter", "version": 1, "vocabulary": vocab.to_dict(),
            "class_ids": [0, 1, 2], "mean": [0.0, 0.5, 0.5], "std": [1, 1, 1]}
    (tmp_path / "seg.pt.json").write_text(json.dumps(meta))
    assert miou(red) == 1.0  # the sidecar's mean leaves only red positive
    assert miou(blue, seg_mean=(0.485, 0.456, 0.406), seg_std=(0.229, 0.224, 0.225)) == 1.0


# ------------------------------------------------------------------------- LPIPS
def _random_lpips(net: str) -> LPIPS:
    torch.manual_seed(1)
    model = LPIPS(net)
    for lin in model.lins:  # LPIPS's lin weights are non-negative
        nn.init.uniform_(lin.weight, 0.0, 1.0)
    return model


def _save_random_lpips(tmp_path, net: str) -> tuple:
    model = _random_lpips(net)
    trunk = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    trunk["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry more; ignored
    lin = {f"lin{k}.model.1.weight": m.weight for k, m in enumerate(model.lins)}
    torch.save(trunk, tmp_path / f"{net}_trunk.pth")
    torch.save(lin, tmp_path / f"{net}.pth")
    return tmp_path / f"{net}.pth", tmp_path / f"{net}_trunk.pth"


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_is_zero_for_identical_images_and_positive_otherwise(tmp_path, net):
    lin, trunk = _save_random_lpips(tmp_path, net)
    model = load_lpips(net, lin, trunk)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 48, 64, generator=g) * 2 - 1
    y = torch.rand(2, 3, 48, 64, generator=g) * 2 - 1
    assert model(x, x).abs().max() < 1e-6
    d = model(x, y)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(d, model(y, x))


def test_lpips_without_weights_says_which_file(tmp_path):
    with pytest.raises(SisgenInputError, match=r"vgg\.pth"):
        load_lpips("vgg", None, None)
    with pytest.raises(SisgenInputError, match="alexnet"):
        load_lpips("alex", tmp_path / "x.pth", None)
    lin, trunk = _save_random_lpips(tmp_path, "vgg")
    with pytest.raises(SisgenInputError, match="not an lpips alex.pth"):
        load_lpips("alex", trunk, trunk)


def test_diversity_renders_each_map_with_several_seeds(toy_gen):
    src = sources.open("toycity", split="val", size=(32, 64), length=3)
    out = compute_metrics(["diversity"], toy_gen, src, lpips=_random_lpips("alex"),
                          diversity_samples=3, batch_size=2)
    assert out["diversity_pairs"] == 3 * 3 and out["diversity_lpips"] > 0
    with pytest.raises(ValueError, match="need a generator"):
        compute_metrics(["diversity"], labelmaps=[src[0]], images=[np.zeros((32, 64, 3),
                                                                            np.uint8)],
                        lpips=LPIPS("alex"))


# --------------------------------------------------------------- intra-class var.
def test_intra_class_variation_hand_case():
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    img = np.zeros((2, 4, 3))
    img[:, :2] = [[[0, 0, 0], [10, 10, 10]], [[0, 0, 0], [10, 10, 10]]]  # class 0: 0 / 10
    img[:, 2:] = 50                                                      # class 1: constant
    img[1, 3] = 255                                                      # ignored pixel
    icv = IntraClassVariation()
    icv.update(img, label)
    std0 = np.std([0, 10, 0, 10], ddof=1)
    r = icv.result()
    assert r["one_color"] == pytest.approx(std0 / 2) and r["one_light"] == pytest.approx(std0 / 2)
    assert r["all_color"] == pytest.approx(5.0 / 2)  # pooled std (ddof 0) of 0,10,0,10 is 5
    # official ("vasis") averaging: absent (image, class) pairs and classes count as 0
    vasis = IntraClassVariation("vasis", num_classes=4)
    for _ in range(2):
        vasis.update(img, label)
    vasis.update(img, np.zeros((2, 4), int))  # everything class 0
    third = img[..., 0].ravel()
    one0 = (2 * std0 + np.std(third, ddof=1)) / 3
    all0 = np.std(np.concatenate([[0, 10, 0, 10, 0, 10, 0, 10], third]))
    v = vasis.result()
    assert v["one_color"] == pytest.approx(one0 / 4)
    assert v["all_light"] == pytest.approx(all0 / 4)
    assert np.isnan(IntraClassVariation().result()["one_color"])


def test_icv_metric_reports_generated_and_real(toy_gen):
    src = sources.open("toycity", split="val", size=(32, 64), length=2)
    out = compute_metrics("icv", toy_gen, src)
    assert {"icv_one_color", "icv_all_light", "icv_real_one_color"} <= set(out)
    assert out["icv_real_all_color"] > 0


# ------------------------------------------------------------------- API and CLI
def test_registry_and_training_use_with_a_model_module():
    assert {"fid", "miou", "diversity", "icv"} <= set(available_metrics())
    with pytest.raises(SisgenInputError, match="unknown metric"):
        compute_metrics("nope", labelmaps=[], images=[])
    with pytest.raises(TypeError, match="unknown metric option"):
        compute_metrics("icv", labelmaps=[], images=[], inception="x")
    model = tiny_model().train()
    src = sources.open("toycity", split="val", size=(64, 128), length=2)  # resized to 32x64
    out = compute_metrics(["icv"], model, src, limit=1)
    assert out["images"] == 1 and model.training  # the training model is left as it was


class _ConstSegmenter(nn.Module):
    def __init__(self, classes: int, c: int):
        super().__init__()
        self.classes, self.c = classes, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.classes, x.shape[2], x.shape[3])
        out[:, self.c] = 1.0
        return out


def test_cli_eval_on_toycity(tmp_path, capsys):
    from sisgen.cli import main

    tiny_model().save(tmp_path / "model")
    torch.jit.script(_ConstSegmenter(10, 1)).save(str(tmp_path / "seg.pt"))  # always "road"
    rc = main(["eval", "--model", str(tmp_path / "model"), "--source", "toycity",
               "--metrics", "miou,icv", "--segmenter", str(tmp_path / "seg.pt"),
               "--limit", "3", "--batch-size", "2"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    src = sources.open("toycity", split="val", size=(32, 64), length=3)
    sem = np.stack([src[i].semantic for i in range(3)])
    valid = sem != 255
    road = (sem[valid] == 1).mean()
    present = len(np.unique(sem[valid]))
    assert out["images"] == 3
    assert out["pixel_accuracy"] == pytest.approx(road)
    assert out["miou"] == pytest.approx(road / present)
    assert "icv_one_color" in out
    assert main(["eval", "--model", str(tmp_path / "model"), "--source", "toycity",
                 "--metrics", "fid", "--limit", "1"]) == 2
    assert "pt_inception" in capsys.readouterr().err


# ------------------------------------ parity with the reference packages (when installed)
def _reference(module: str):
    """Import a reference package or skip (torchvision-based ones fail on CPU-only torch)."""
    try:
        return __import__(module, fromlist=["_"])
    except Exception as e:  # ImportError, or torchvision's RuntimeError on a mismatched torch
        pytest.skip(f"{module} not usable here: {e}")


def test_inception_matches_pytorch_fid(tmp_path, inception, monkeypatch):
    pfi = _reference("pytorch_fid.inception")
    torch.save(inception.state_dict(), tmp_path / "w.pth")
    monkeypatch.setattr(pfi, "load_state_dict_from_url",
                        lambda *a, **k: torch.load(tmp_path / "w.pth"))
    ref = pfi.InceptionV3([3]).eval()
    x = torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8)
    with torch.no_grad():
        expected = ref(x.float() / 255.0)[0].flatten(1)
    torch.testing.assert_close(inception(x), expected, atol=1e-5, rtol=1e-4)


def test_inception_matches_torch_fidelity(tmp_path, inception):
    tfe = _reference("torch_fidelity.feature_extractor_inceptionv3")
    torch.save(inception.state_dict(), tmp_path / "w.pth")
    ref = tfe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(tmp_path / "w.pth"))
    x = torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8)
    mine = load_inception(tmp_path / "w.pth", protocol="torch-fidelity")
    torch.testing.assert_close(mine(x), ref(x)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_matches_the_lpips_package(tmp_path, net):
    lpips = _reference("lpips")
    ref = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False).eval()
    for k in range(5):
        nn.init.uniform_(getattr(ref, f"lin{k}").model[-1].weight, 0.0, 1.0)
    torch.save({k: v for k, v in ref.state_dict().items() if k.startswith("lin")},
               tmp_path / "lin.pth")
    trunk = {}
    for k, v in ref.net.state_dict().items():  # slice<i>.<torchvision index>.<param>
        _, idx, param = k.split(".")
        trunk[f"features.{idx}.{param}"] = v
    torch.save(trunk, tmp_path / "trunk.pth")
    mine = load_lpips(net, tmp_path / "lin.pth", tmp_path / "trunk.pth")
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = ref(x, y).flatten()
    torch.testing.assert_close(mine(x, y), expected, atol=1e-6, rtol=1e-5)
