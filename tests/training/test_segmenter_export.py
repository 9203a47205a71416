"""Segmenter export: ONNX / TorchScript files with sidecars, parity through Segmenter, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from sisgen import get_vocabulary, sources
from sisgen.errors import SisgenInputError
from sisgen.segmenter import Segmenter, segmenter_metadata
from sisgen.training.segmenter import SegNet, SourcePairs, evaluate_segmenter, train_segmenter
from sisgen.training.segmenter import cli as segmenter_cli
from sisgen.training.segmenter.export import check_export, export_segmenter

H, W = 32, 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    """A tiny net trained a few steps (BatchNorm statistics away from their defaults)."""
    data = SourcePairs(sources.open("toycity", size=(H, W), length=6, seed=0))
    net, _ = train_segmenter([(data, 3)], steps=4, width=4, depth=3, seed=0)
    return net


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    return {fmt: export_segmenter(trained, folder / f"seg{suffix}", vocabulary="toycity",
                                  size=(H, W), format=fmt)
            for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt"))}


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_file_matches_the_torch_net_through_segmenter(trained, exported, fmt):
    path = exported[fmt]
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["format"] == "sisgen-segmenter" and meta["version"] == 1
    assert meta["class_ids"] == list(range(10)) and meta["size"] == [H, W]
    assert meta["input_range"] == [0, 1] and meta["mean"] == [0, 0, 0] and meta["std"] == [1, 1, 1]
    assert meta["vocabulary"] == get_vocabulary("toycity").to_dict()
    batch = images(5)  # another batch than the export's example: the batch axis is dynamic
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = trained(x)
    explicit = Segmenter(path, class_map=meta["class_ids"], mean=meta["mean"], std=meta["std"],
                         input_range=tuple(meta["input_range"]))
    from_sidecar = Segmenter(path)
    for seg in (explicit, from_sidecar):
        torch.testing.assert_close(torch.from_numpy(seg.logits(batch)), expected)
        np.testing.assert_array_equal(seg.predict(batch), expected.argmax(1).numpy())
    assert from_sidecar.vocabulary.name == "toycity"
    assert check_export(trained, path, (H, W)) < 1e-4


def test_exported_segmenter_scores_as_the_torch_net(trained, exported):
    val = SourcePairs(sources.open("toycity", split="val", size=(H, W), length=4))
    torch_scores = evaluate_segmenter(trained, val)
    onnx_scores = evaluate_segmenter(Segmenter(exported["onnx"]), val)
    assert onnx_scores["pixel_acc"] == pytest.approx(torch_scores["pixel_acc"], abs=0.1)
    with pytest.raises(SisgenInputError, match="seg.onnx"):
        evaluate_segmenter(Segmenter(exported["onnx"]), val, vocabulary="cityscapes")


def test_channels_of_a_vocabulary_with_gaps_follow_its_ids(tmp_path):
    vocab = get_vocabulary("cityscapes")  # ids 0..33 with names; channel c is vocab.ids[c]
    net = SegNet(len(vocab), width=2, depth=1, class_ids=vocab.ids).eval()
    path = export_segmenter(net, tmp_path / "cs.pt", vocabulary=vocab, size=(8, 16),
                            format="torchscript")
    assert segmenter_metadata(path)["class_ids"] == vocab.ids


def test_export_refuses_classes_outside_the_vocabulary_and_unknown_formats(tmp_path):
    net = SegNet(12, width=2, depth=1)
    with pytest.raises(SisgenInputError, match=r"class ids \[10, 11\].*'toycity'"):
        export_segmenter(net, tmp_path / "x.onnx", vocabulary="toycity", size=(8, 8))
    with pytest.raises(SisgenInputError, match="format"):
        export_segmenter(SegNet(10, width=2, depth=1), tmp_path / "x.bin",
                         vocabulary="toycity", size=(8, 8), format="tflite")
    assert not list(tmp_path.iterdir())


def test_cli_trains_scores_and_exports(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="sisgen")
    segmenter_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "seg"
    args = parser.parse_args([
        "segmenter", "train", "--source", "toycity", "--source-option", "length=6",
        "--size", f"{H}x{W}", "--steps", "3", "--batch-size", "2", "--width", "4",
        "--val-limit", "3", "--threads", "1", "--out", str(out)])
    assert args.func(args) == 0
    for name in ("segmenter.onnx", "segmenter.onnx.json", "segmenter.pt", "segmenter.pt.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["images"] == 3 and metrics["train"]["steps"] == 3
    assert set(metrics["val"]) == {"miou", "pixel_acc", "iou", "images"}
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps"] == 3 and "miou" in printed
    assert Segmenter(out / "segmenter.onnx").predict(images(2)).shape == (2, H, W)


def test_cli_mixes_a_generated_folder_dataset_and_checks_its_vocabulary(tmp_path):
    from sisgen.io import write_image, write_json

    syn = tmp_path / "generated"
    label = np.full((H, W), 1, np.uint8)
    label[:4] = 255
    for i in range(2):
        write_image(syn / "labels" / f"g{i}.png", label)
        write_image(syn / "images" / f"g{i}.png", images(1, seed=i)[0])
    write_json(syn / "vocabulary.json", get_vocabulary("toycity").to_dict())
    parser = argparse.ArgumentParser(prog="sisgen")
    segmenter_cli.add_parser(parser.add_subparsers(dest="command"))
    base = ["segmenter", "train", "--source", "toycity", "--source-option", "length=4",
            "--size", f"{H}x{W}", "--steps", "2", "--batch-size", "2", "--width", "4",
            "--no-val", "--synthetic", str(syn), "--synthetic-per-batch", "1",
            "--formats", "torchscript"]
    args = parser.parse_args([*base, "--separate-norm", "--out", str(tmp_path / "a")])
    assert args.func(args) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["train"]["drawn"] == [4, 2] and metrics["val"] is None
    assert metrics["args"]["separate_norm"] is True
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "metrics.json", "segmenter.pt", "segmenter.pt.json"]
    write_json(syn / "vocabulary.json", get_vocabulary("cityscapes").to_dict())
    args = parser.parse_args([*base, "--out", str(tmp_path / "b")])
    with pytest.raises(SisgenInputError, match="vocabulary"):
        args.func(args)


def test_cli_transfer_writes_per_class_ratios(tmp_path, capsys):
    from sisgen.io import write_image, write_json
    from sisgen.training.segmenter import ClassTransfer

    # a "synthetic" set: real ToyCity pairs written as a folder dataset
    src = sources.open("toycity", split="extra", size=(H, W), length=4, seed=0)
    syn = tmp_path / "generated"
    for i in range(len(src)):
        write_image(syn / "labels" / f"g{i}.png", src.load(i).semantic.astype(np.uint8))
        write_image(syn / "images" / f"g{i}.png", src.photo(i))
    write_json(syn / "vocabulary.json", get_vocabulary("toycity").to_dict())
    parser = argparse.ArgumentParser(prog="sisgen")
    segmenter_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "transfer.json"
    args = parser.parse_args([
        "segmenter", "transfer", "--source", "toycity", "--source-option", "length=6",
        "--size", f"{H}x{W}", "--synthetic", str(syn), "--steps", "2", "--batch-size", "2",
        "--width", "4", "--out", str(out)])
    assert args.func(args) == 0
    saved = ClassTransfer.load(out, vocabulary=get_vocabulary("toycity"))
    assert saved.config["real_train"] == 3 and saved.config["synthetic"] == 4
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["ratio"] == {k: v["ratio"] for k, v in saved.classes.items()}
    assert printed["poor"] == saved.poor_classes(0.8)
