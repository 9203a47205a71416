"""LabeledDataset: (photo, label) items of any source with photos, ignore pixels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisgen import get_vocabulary, sources
from sisgen.errors import SisgenInputError
from sisgen.integrations import LabeledDataset, MixedDataset
from sisgen.integrations.labeled import train_id_vocabulary
from sisgen.io import write_image, write_json

H, W = 32, 64


def toycity(length=6, split="train", size=(H, W)):
    return sources.open("toycity", split=split, size=size, length=length, seed=0)


def folder_dataset(root, n=3, size=(H, W), photos=True, vocabulary="toycity", ids=(1, 8)):
    """A folder dataset as ``sisgen generate --writers folder`` lays it out."""
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.full(size, ids[0], np.uint8)
        label[:, size[1] // 2:] = ids[1]
        label[: size[0] // 4] = 255  # a curated map: ignored pixels
        write_image(root / "labels" / f"s{i}.png", label)
        if photos:
            write_image(root / "images" / f"s{i}.png",
                        rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    write_json(root / "vocabulary.json", get_vocabulary(vocabulary).to_dict())
    return sources.open("folder", root)


def test_items_are_image_label_pairs_in_the_documented_form():
    src = toycity()
    ds = LabeledDataset(src)
    item = ds[2]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, H, W)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["label"].dtype == torch.int64 and item["label"].shape == (H, W)
    assert item["name"] == src.keys()[2]
    np.testing.assert_array_equal(item["label"].numpy(), src.load(2).semantic)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy() * 255, src.photo(2),
                               atol=1e-3)
    assert len(ds) == 6 and ds.vocabulary.name == "toycity"
    with pytest.raises(IndexError):
        ds[6]


def test_resize_uses_the_project_label_resize_and_area_for_photos():
    from sisgen.integrations.augment import resize_image
    from sisgen.labelmap import resize_nearest

    src = toycity(size=(64, 128))
    item = LabeledDataset(src, size=(H, W))[1]
    assert item["image"].shape == (3, H, W) and item["label"].shape == (H, W)
    np.testing.assert_array_equal(item["label"].numpy(),
                                  resize_nearest(src.load(1).semantic, (H, W)))
    expected = resize_image(src.photo(1), (H, W)).astype(np.float32) / 255
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_a_generated_folder_dataset_keeps_its_ignore_pixels(tmp_path):
    ds = LabeledDataset(folder_dataset(tmp_path))
    label = ds[0]["label"].numpy()
    assert (label[: H // 4] == 255).all()
    assert set(np.unique(label[H // 4:])) == {1, 8}


def test_ignored_classes_become_ignore_pixels(tmp_path):
    src = folder_dataset(tmp_path / "f", ids=(1, 8))  # road | car, top quarter ignored
    plain = LabeledDataset(src)[0]["label"]
    item = LabeledDataset(src, ignore_classes=["car"])[0]["label"]
    assert (item[plain == 8] == 255).all() and (item[plain != 8] == plain[plain != 8]).all()
    by_id = LabeledDataset(src, ignore_classes=[8, "road"])[0]["label"]
    assert (by_id == 255).all()
    with pytest.raises(SisgenInputError, match="no class 'bus'"):
        LabeledDataset(src, ignore_classes=["bus"])


def test_hflip_is_seeded_per_item_and_epoch():
    src = toycity(length=8)
    a = LabeledDataset(src, hflip=True, seed=3)
    b = LabeledDataset(src, hflip=True, seed=3)
    plain = LabeledDataset(src)
    flipped = []
    for i in range(8):
        la, lb, lp = a[i]["label"], b[i]["label"], plain[i]["label"]
        assert torch.equal(la, lb)
        assert torch.equal(la, lp) or torch.equal(la, lp.flip(-1))
        flipped.append(not torch.equal(la, lp))
    assert any(flipped) and not all(flipped)
    a.set_epoch(1)
    assert [not torch.equal(a[i]["label"], plain[i]["label"]) for i in range(8)] != flipped


def test_a_source_without_photos_is_refused_naming_the_file(tmp_path):
    src = folder_dataset(tmp_path, photos=False)
    with pytest.raises(SisgenInputError, match="no photo") as e:
        LabeledDataset(src)
    assert "s0.png" in str(e.value)


def test_a_photo_of_another_aspect_ratio_is_refused(tmp_path):
    src = folder_dataset(tmp_path, n=1)
    write_image(tmp_path / "images" / "s0.png", np.zeros((H, H, 3), np.uint8))
    with pytest.raises(SisgenInputError, match="aspect"):
        LabeledDataset(src)[0]


def test_train_ids_map_labels_and_name_the_train_id_space(tmp_path):
    cs = get_vocabulary("cityscapes")
    road, car = cs["road"].id, cs["car"].id
    ds = LabeledDataset(folder_dataset(tmp_path, vocabulary="cityscapes", ids=(road, car)),
                        train_ids=True)
    label = ds[0]["label"].numpy()
    assert set(np.unique(label)) == {cs["road"].train_id, cs["car"].train_id, 255}
    assert ds.vocabulary.ids == get_vocabulary("cityscapes_trainid").ids
    with pytest.raises(SisgenInputError, match="train ids"):
        train_id_vocabulary(get_vocabulary("toycity"))


def test_mixed_dataset_of_real_and_synthetic_labeled_datasets(tmp_path):
    real = LabeledDataset(toycity(length=4))
    synthetic = LabeledDataset(folder_dataset(tmp_path, n=3))
    mixed = MixedDataset(real=real, synthetic=synthetic, ratio=0.5, seed=0)
    items = [mixed[i] for i in range(len(mixed))]
    assert sum(it["synthetic"] for it in items) == 2
    for it in items:
        assert it["image"].shape == (3, H, W) and it["label"].dtype == torch.int64
        assert bool((it["label"] == 255).any()) == it["synthetic"]


def test_a_curated_dataset_written_by_generate_reads_back_with_its_ignore_pixels(tmp_path):
    from sisgen.engines import Generator
    from sisgen.engines.torch_engine import TorchEngine
    from sisgen.filtering import QualityFilter
    from sisgen.generate import generate
    from sisgen.models import build_model
    from sisgen.segmenter import Segmenter

    torch.manual_seed(0)
    model = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4, height=H,
                        width=W, num_upsampling_layers="normal")
    gen = Generator(TorchEngine(model, "cpu"), model.vocabulary, (H, W), model.noise_spec(),
                    model.model_name, "testhash", model.uses_edges, backend="torch")

    def road_everywhere(images):  # a segmenter that predicts road (1) everywhere
        logits = torch.zeros(images.shape[0], 10, *images.shape[-2:])
        logits[:, 1] = 1.0
        return logits

    curate = QualityFilter(Segmenter(road_everywhere), min_miou=0.0,
                           mode="ignore_disagreement")
    src = toycity(length=3)
    generate(gen, src, tmp_path / "run", writers=("folder",), quality_filter=curate,
             batch_size=3)
    ds = LabeledDataset(sources.open("folder", tmp_path / "run" / "folder"))
    assert len(ds) == 3
    for i in range(3):
        label, truth = ds[i]["label"].numpy(), src.load(i).semantic
        assert ds[i]["image"].shape == (3, H, W)
        np.testing.assert_array_equal(label == 255, truth != 1)  # disagreeing pixels ignored
        assert (label[truth == 1] == 1).all()
