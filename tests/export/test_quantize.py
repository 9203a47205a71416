"""int8 ONNX exports: quantized graph, metadata, calibration inputs, parity bound, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sisgen
from sisgen.errors import SisgenInputError
from sisgen.models import build_model
from sisgen.sources.toycity import ToyCitySource

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from sisgen.export import check_parity, export_onnx  # noqa: E402
from sisgen.export.quantize import (  # noqa: E402
    calibration_feeds,
    calibration_maps,
    quantize_int8,
)


@pytest.fixture(scope="module")
def model(settle):
    torch.manual_seed(3)
    return settle(build_model("spade", dataset="toycity", ngf=4, spade_hidden=8, z_dim=8,
                              height=32, width=64))


@pytest.fixture(scope="module")
def int8_file(model, tmp_path_factory):
    path, parity = export_onnx(model, tmp_path_factory.mktemp("int8") / "m.onnx", int8=True)
    return path, parity


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_int8_export_is_quantized_and_keeps_metadata(model, int8_file):
    path, parity = int8_file
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= _ops(path)
    weights = [t for t in onnx.load(str(path)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 20  # every conv's weight is stored in int8
    gen = sisgen.load(path)
    meta = gen.engine.metadata
    assert meta["sisgen.precision"] == "int8"
    assert meta["sisgen.model_hash"] == model.weights_hash()
    assert not [k for k in meta if k.startswith("onnx.")]
    assert not list(path.parent.glob(".*"))  # no temp files or folders left
    assert parity is not None and parity.precision == "int8" and parity.passed


def test_int8_images_are_close_to_fp32_but_not_equal(model, int8_file):
    maps = [ToyCitySource(size=(32, 64), length=4, seed=9).load(i) for i in range(4)]
    gen8 = sisgen.load(int8_file[0])
    labels, edges, noise = gen8.prepare(maps, [1, 2, 3, 4])
    with torch.inference_mode():
        ref = model.export_form()(labels, edges, noise).numpy()
    out = np.asarray(gen8(labels, edges, noise))
    assert out.shape == ref.shape == (4, 3, 32, 64)
    diff = np.abs(out - ref)
    assert 0 < diff.mean() < 0.05  # an approximation, bounded on average


def test_parity_of_int8_bounds_the_mean(model, int8_file):
    result = check_parity(model, int8_file[0], "onnx")
    assert result.tol == pytest.approx(0.05) and result.max_abs > result.mean_abs
    assert "mean abs tolerance" in str(result)
    tight = check_parity(model, int8_file[0], "onnx", tol=result.mean_abs / 2)
    assert not tight.passed  # decided by the mean, which is above this bound


def test_calibration_feeds_from_label_maps_and_blobs(model):
    maps = [ToyCitySource(size=(64, 128), length=10).load(i) for i in range(10)]
    batches = list(calibration_feeds(model, maps, batch=4))
    assert [b["labels"].shape[0] for b in batches] == [4, 4, 2]
    first = batches[0]
    assert set(first) == {"labels", "edges", "noise"}
    assert first["labels"].shape == (4, 32, 64)  # resized to the model's resolution
    assert first["edges"].shape == (4, 1, 32, 64) and first["noise"].shape == (4, 8)
    assert first["edges"].max() == 1  # instance edges of the real maps
    blobs = list(calibration_feeds(model, maps=10, batch=4))
    assert [b["noise"].shape[0] for b in blobs] == [4, 4, 2]


def test_calibration_maps_are_spread_over_the_source():
    src = ToyCitySource(size=(32, 64), length=10)
    picked = [m.id for m in calibration_maps(src, 4)]
    assert picked == [src.load(i).id for i in (0, 3, 6, 9)]
    assert len(calibration_maps(src, 64)) == 10  # all of a smaller source


def test_bad_calibration_and_options(model, tmp_path):
    path, _ = export_onnx(model, tmp_path / "fp32.onnx", check=False)
    with pytest.raises(SisgenInputError, match="at least one calibration batch"):
        quantize_int8(path, tmp_path / "q.onnx", [])
    feeds = next(calibration_feeds(model, maps=2))
    del feeds["edges"]
    with pytest.raises(SisgenInputError, match="lack edges"):
        quantize_int8(path, tmp_path / "q.onnx", [feeds])
    with pytest.raises(SisgenInputError, match="half"):
        export_onnx(model, tmp_path / "h.onnx", half=True, int8=True)
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "h.onnx").exists()


def test_cli_int8_export_calibrated_on_a_source(model, tmp_path, capsys):
    from sisgen.cli import main

    model.save(tmp_path / "m")
    rc = main(["export", "onnx", "--model", str(tmp_path / "m"), "--out",
               str(tmp_path / "q.onnx"), "--int8", "--source", "toycity",
               "--calibration-maps", "8"])
    out = capsys.readouterr().out
    assert rc == 0 and "mean abs tolerance" in out and "int8" in out
    assert sisgen.load(tmp_path / "q.onnx").engine.metadata["sisgen.precision"] == "int8"
    rc = main(["export", "onnx", "--model", str(tmp_path / "m"), "--source", "toycity"])
    assert rc == 2 and "add --int8" in capsys.readouterr().err


def test_generate_runs_an_int8_export(int8_file, tmp_path):
    from sisgen.generate import generate

    src = ToyCitySource(size=(32, 64), length=4)
    report = generate(sisgen.load(int8_file[0]), src, tmp_path / "out", writers=("folder",),
                      batch_size=3, progress=False)
    assert report.written == 4 and report.failed == 0
    assert len(list((tmp_path / "out" / "folder").rglob("*.png"))) >= 4


def test_int8_on_the_cuda_provider_warns(int8_file, monkeypatch):
    import onnxruntime as ort

    from sisgen.engines.onnx_engine import OnnxEngine

    assert not _warnings_of(lambda: OnnxEngine(int8_file[0]))
    monkeypatch.setattr(ort.InferenceSession, "get_providers",
                        lambda self: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    caught = _warnings_of(lambda: OnnxEngine(int8_file[0]))
    assert any("int8 export for the CPU" in str(w.message) for w in caught)


def _warnings_of(fn) -> list:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if "int8" in str(w.message)]
