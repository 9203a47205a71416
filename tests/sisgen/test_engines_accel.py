"""Accelerated engines: TensorRT builder helpers, torch modes, onnxruntime IO binding, AOT.

What needs a GPU or the tensorrt package skips cleanly without them; the pure-python parts
(cache keys, profile shapes, dtype mapping, metadata sidecars, dispatch) run everywhere.
Compiling (``torch.compile``, AOTInductor) takes about a minute per test on a CPU, so
those tests run only with ``SISGEN_SLOW=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

import sisgen
from sisgen.engines import load_generator
from sisgen.engines.metadata import (
    generator_from_metadata,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from sisgen.engines.onnx_engine import (
    OnnxEngine,
    output_shape,
    resolve_providers,
    tensorrt_ep_options,
)
from sisgen.engines.tensorrt_engine import torch_dtype
from sisgen.engines.torch_engine import TorchEngine
from sisgen.errors import SisgenInputError
from sisgen.export.onnx import export_onnx, used_inputs
from sisgen.export.tensorrt import (
    build_engine,
    engine_cache_key,
    file_sha256,
    normalize_batch,
    onnx_input_dims,
    onnx_precision,
    profile_shapes,
)
from sisgen.models import build_model

CUDA = torch.cuda.is_available()
SLOW = os.environ.get("SISGEN_SLOW") == "1"
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
slow = pytest.mark.skipif(not SLOW, reason="compiles for about a minute; set SISGEN_SLOW=1")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("spade", dataset="toycity", ngf=4, spade_hidden=8, z_dim=8,
                       height=32, width=64).eval()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    path, _ = export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx", check=False,
                          optimize=False)
    return path


@pytest.fixture(scope="module")
def reference(model):
    example = model.example_inputs(batch_size=3, seed=7)
    with torch.inference_mode():
        ref = model.export_form()(*example)
    return example, ref


# ------------------------------------------------------------------ profile shapes
def test_normalize_batch():
    assert normalize_batch(8) == (1, 8, 8)
    assert normalize_batch(1) == (1, 1, 1)
    assert normalize_batch((2, 4, 16)) == (2, 4, 16)
    assert normalize_batch([1, 1, 1]) == (1, 1, 1)
    for bad in (0, (4, 2, 8), (1, 8, 4), (0, 1, 1), (1, 2)):
        with pytest.raises(SisgenInputError):
            normalize_batch(bad)


def test_profile_shapes_dynamic_batch():
    dims = {"labels": (None, 32, 64), "edges": (None, 1, 32, 64), "noise": (None, 8)}
    shapes = profile_shapes(dims, (1, 4, 16), (32, 64), (8,))
    assert shapes == {
        "labels": ((1, 32, 64), (4, 32, 64), (16, 32, 64)),
        "edges": ((1, 1, 32, 64), (4, 1, 32, 64), (16, 1, 32, 64)),
        "noise": ((1, 8), (4, 8), (16, 8)),
    }
    assert profile_shapes({"labels": (2, 32, 64)}, 8, (32, 64))["labels"] == ((2, 32, 64),) * 3


def test_profile_shapes_dynamic_size_scales_spatial_noise():
    dims = {"labels": (None, None, None), "edges": (None, 1, None, None),
            "noise": (None, 16, None, None)}
    size = ((32, 64), (64, 128), (128, 256))
    shapes = profile_shapes(dims, 2, (64, 128), (16, 32, 64), size)  # noise at half size
    assert shapes["labels"] == ((1, 32, 64), (2, 64, 128), (2, 128, 256))
    assert shapes["edges"][2] == (2, 1, 128, 256)
    assert shapes["noise"] == ((1, 16, 16, 32), (2, 16, 32, 64), (2, 16, 64, 128))
    # no size given: the dynamic spatial axes take the model resolution
    fixed = profile_shapes(dims, 4, (64, 128), (16, 32, 64))
    assert fixed["labels"] == ((1, 64, 128), (4, 64, 128), (4, 64, 128))
    assert profile_shapes(dims, 1, (64, 128), (16, 32, 64), (96, 96))["noise"][0] == \
        (1, 16, 48, 48)


def test_profile_shapes_rejects_other_dynamic_axes():
    with pytest.raises(SisgenInputError, match="dynamic axis 1"):
        profile_shapes({"noise": (None, None, 4, 4)}, 2, (4, 4))
    with pytest.raises(SisgenInputError, match="size"):
        profile_shapes({"labels": (None, 8, 8)}, 2, (8, 8), size=((16, 16), (8, 8), (32, 32)))


def test_onnx_input_dims_and_precision(onnx_file):
    proto = onnx.load(str(onnx_file))
    dims = onnx_input_dims(proto)
    assert list(dims) == ["labels", "edges", "noise"]
    assert dims["labels"][0] is None and dims["labels"][1:] == (32, 64)
    assert dims["edges"][1:] == (1, 32, 64) and dims["noise"][1:] == (8,)
    assert onnx_precision(proto) == "fp32"
    half = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT16, [1], [1.0])
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, [None, 2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [None, 2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                                   [x], [y], [half])
    proto16 = onnx.helper.make_model(graph)
    assert onnx_precision(proto16) == "fp16"
    assert onnx_input_dims(proto16) == {"x": (None, 2)}


# ------------------------------------------------------------------ engine cache key
def test_engine_cache_key_stable_and_sensitive():
    prof = {"labels": ((1, 32, 64), (4, 32, 64), (8, 32, 64)), "noise": ((1, 8),) * 3}
    base = ("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "sm_90", prof)
    key = engine_cache_key(*base)
    assert len(key) == 32 and int(key, 16) >= 0
    assert engine_cache_key(*base) == key
    # same profile in another dict order: same key
    assert engine_cache_key(*base[:4], dict(reversed(list(prof.items())))) == key
    changed = [
        ("b" * 64, *base[1:]),
        (base[0], "10.9.1", *base[2:]),
        (*base[:2], "NVIDIA A100-SXM4-80GB", *base[3:]),
        (*base[:3], "sm_80", prof),
        (*base[:4], {**prof, "labels": ((1, 32, 64), (8, 32, 64), (8, 32, 64))}),
    ]
    keys = {engine_cache_key(*c) for c in changed}
    assert key not in keys and len(keys) == len(changed)


def test_file_sha256(tmp_path):
    f = tmp_path / "x.bin"
    data = os.urandom(3 << 20)
    f.write_bytes(data)
    assert file_sha256(f, chunk=1 << 16) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ dtypes
def test_tensorrt_dtype_mapping():
    assert torch_dtype(SimpleNamespace(name="FLOAT")) == torch.float32
    assert torch_dtype(SimpleNamespace(name="HALF")) == torch.float16
    assert torch_dtype(SimpleNamespace(name="INT64")) == torch.int64
    assert torch_dtype("DataType.INT32") == torch.int32
    assert torch_dtype("DataType.UINT8") == torch.uint8
    assert torch_dtype("DataType.BF16") == torch.bfloat16
    with pytest.raises(TypeError, match="FP8"):
        torch_dtype("DataType.FP8")


# ------------------------------------------------------------------ metadata sidecar
def test_sidecar_round_trip(tmp_path, onnx_file):
    meta = dict(OnnxEngine(onnx_file).metadata)
    meta["sisgen.engine"] = json.dumps({"tensorrt": "10.9.0"})
    plan = tmp_path / "m.engine"
    side = write_sidecar(plan, meta)
    assert side == sidecar_path(plan) == tmp_path / "m.engine.json"
    assert read_sidecar(plan) == meta
    with pytest.raises(TypeError):
        write_sidecar(plan, {"sisgen.resolution": [32, 64]})
    # the metadata alone describes the generator
    gen = generator_from_metadata(OnnxEngine(onnx_file), read_sidecar(plan), plan, "tensorrt")
    assert gen.resolution == (32, 64) and gen.backend == "tensorrt"
    assert gen.noise_spec == {"shape": [8], "distribution": "normal"}
    assert gen.vocabulary is not None and gen.uses_edges


def test_load_engine_needs_its_sidecar(tmp_path, onnx_file):
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"not a plan")
    with pytest.raises(SisgenInputError, match="sidecar"):
        sisgen.load(plan)
    sidecar_path(plan).write_text("{broken")
    with pytest.raises(SisgenInputError, match="unreadable"):
        load_generator(plan)
    sidecar_path(plan).write_text(json.dumps({"sisgen.model_name": "x"}))
    with pytest.raises(SisgenInputError, match="resolution"):
        load_generator(plan)
    write_sidecar(plan, dict(OnnxEngine(onnx_file).metadata))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="tensorrt"):
            load_generator(plan)


def test_load_generator_dispatch_errors(tmp_path, onnx_file, model):
    with pytest.raises(SisgenInputError, match="cannot open"):
        load_generator(onnx_file, backend="tensorrt")
    with pytest.raises(SisgenInputError, match="no such"):
        load_generator(tmp_path / "missing.plan")
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"PK not a package")
    with pytest.raises(SisgenInputError, match="AOTInductor"):
        load_generator(bad)
    folder = model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="CUDA"):
        load_generator(folder, device="cpu", mode="cudagraphs")
    gen = load_generator(folder, device="cpu", mode="eager", channels_last=True)
    assert gen.backend == "torch" and gen.engine.channels_last


def test_torch_only_options_refused_for_exported_files(onnx_file):
    for options in ({"half": True}, {"channels_last": True}, {"mode": "cudagraphs"}):
        with pytest.raises(SisgenInputError, match="only apply to model folders"):
            load_generator(onnx_file, **options)
    # given as false (the CLI's defaults) they are dropped
    gen = load_generator(onnx_file, mode="eager", half=False, channels_last=False)
    assert gen.backend == "onnxruntime"


def test_build_engine_checks_before_tensorrt(tmp_path, onnx_file):
    with pytest.raises(SisgenInputError, match="fp32"):
        build_engine(onnx_file, tmp_path / "m.engine", half=True)
    plain = tmp_path / "plain.onnx"
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    onnx.save(proto, str(plain))
    with pytest.raises(SisgenInputError, match="metadata"):
        build_engine(plain)
    with pytest.raises(SisgenInputError, match="not found"):
        build_engine(tmp_path / "none.onnx")


def test_export_api_formats(model, tmp_path):
    from sisgen.export import FORMAT_ARGS

    assert "batch" in FORMAT_ARGS["tensorrt"] and "dynamic" in FORMAT_ARGS["aot"]
    with pytest.raises(SisgenInputError, match="does not take"):
        model.export(format="tensorrt", file=tmp_path / "m.engine", device="cuda")
    with pytest.raises(SisgenInputError, match="does not take"):
        model.export(format="aot", workspace_gb=2)
    with pytest.raises(ValueError, match="cuda"):
        model.export(format="aot", file=tmp_path / "m.pt2", half=True, device="cpu")


# ------------------------------------------------------------------ torch modes
def test_torch_engine_modes_and_errors(model, reference):
    with pytest.raises(ValueError, match="CUDA"):
        TorchEngine(model, "cpu", mode="cudagraphs")
    with pytest.raises(ValueError, match="mode"):
        TorchEngine(model, "cpu", mode="jit")
    example, ref = reference
    out = TorchEngine(model, "cpu", channels_last=True)(*example)
    assert torch.allclose(out, ref, atol=1e-5)
    half = TorchEngine(model, "cpu", half=True)(*example)  # bf16 autocast on the CPU
    assert half.dtype == torch.float32 and half.shape == ref.shape
    err = (half - ref).abs()
    assert 0 < float(err.max()) < 0.25 and float(err.mean()) < 0.03
    bf16 = TorchEngine(model, "cpu", half="bf16")
    assert bf16.amp_dtype == torch.bfloat16 and torch.equal(bf16(*example), half)
    assert TorchEngine(model, "cpu", half="fp16").amp_dtype == torch.float16
    assert TorchEngine(model, "cpu").amp_dtype is None
    with pytest.raises(ValueError, match="half type"):
        TorchEngine(model, "cpu", half="int8")
    before = torch.backends.cudnn.benchmark
    TorchEngine(model, "cpu")  # only CUDA engines turn on cuDNN autotuning
    assert torch.backends.cudnn.benchmark == before


# ------------------------------------------------------------------ batch ranges
def test_run_in_range_splits_and_pads():
    from sisgen.engines.batching import run_in_range

    seen = []

    def fn(feeds):
        seen.append(feeds["x"].shape[0])
        return {"y": feeds["x"] * 2, "z": feeds["x"][:, :1]}

    x = torch.arange(11.0).view(11, 1).repeat(1, 3)
    splits = []
    out = run_in_range(fn, {"x": x, "none": None}, 2, 4, on_split=splits.append)
    assert seen == [4, 4, 3] and splits == [11]  # chunks of the max; the rest is in range
    assert torch.equal(out["y"], x * 2) and torch.equal(out["z"], x[:, :1])
    seen.clear()
    out = run_in_range(fn, {"x": x[:9]}, 4, 4)
    assert seen == [4, 4, 4]  # the last chunk (1 sample) padded to the minimum
    assert torch.equal(out["y"], x[:9] * 2)
    seen.clear()
    one = run_in_range(lambda f: f["x"] + 1, {"x": x[:1]}, 3, 8)
    assert torch.equal(one, x[:1] + 1)
    assert torch.equal(run_in_range(lambda f: f["x"], {"x": x}, 1, 64), x)
    with pytest.raises(ValueError, match="low <= high"):
        run_in_range(fn, {"x": x}, 5, 4)


@slow
def test_torch_compile_cpu(model, reference):
    example, ref = reference
    eng = TorchEngine(model, "cpu", mode="compile")
    assert torch.allclose(eng(*example), ref, atol=1e-4)


@needs_cuda
@pytest.mark.gpu
def test_cudagraphs_match_eager_and_short_batches(model):
    example = [None if t is None else t.cuda() for t in model.example_inputs(4, seed=3)]
    eager = TorchEngine(model, "cuda")
    graphs = TorchEngine(model, "cuda", mode="cudagraphs")
    ref = eager(*example)
    assert torch.allclose(graphs(*example), ref, atol=1e-4)
    short = [None if t is None else t[:3] for t in example]
    assert torch.allclose(graphs(*short), ref[:3], atol=1e-4)
    assert sum(len(v) for v in graphs._graphs.values()) == 1  # replayed, not re-captured
    assert torch.allclose(graphs(*example), ref, atol=1e-4)  # buffers refilled each call


@needs_cuda
@pytest.mark.gpu
def test_torch_half_cuda(model, reference):
    example, ref = reference
    out = TorchEngine(model, "cuda", half=True)(*example)
    assert out.dtype == torch.float32
    assert float((out.cpu() - ref).abs().mean()) < 0.02


# ------------------------------------------------------------------ onnxruntime
def test_resolve_providers():
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["tensorrt", "cuda", "cpu"], avail) == avail
    assert resolve_providers(["cuda"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(None, avail) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = tensorrt_ep_options(fp16=True, workspace_gb=2)
    got = resolve_providers(["trt", ("cuda", {"device_id": 1})], avail, trt_options=trt)
    assert got[0] == ("TensorrtExecutionProvider", trt)
    assert got[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert got[2] == "CPUExecutionProvider"
    assert trt["trt_fp16_enable"] is True and trt["trt_max_workspace_size"] == 2 << 30
    with pytest.raises(ValueError, match="short names"):
        resolve_providers(["tpu"], avail)


def test_tensorrt_ep_cache_options(tmp_path):
    opts = tensorrt_ep_options(cache_dir=tmp_path / "trt")
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert (tmp_path / "trt").is_dir() and opts["trt_fp16_enable"] is False


def test_output_shape():
    inputs = {"labels": torch.zeros(5, 32, 64, dtype=torch.long)}
    assert output_shape(["batch", 3, 32, 64], inputs, "float_nchw") == (5, 3, 32, 64)
    assert output_shape(["b", 3, "h", "w"], inputs, "float_nchw") == (5, 3, 32, 64)
    assert output_shape(["b", "h", "w", 3], inputs, "uint8_nhwc") == (5, 32, 64, 3)
    assert output_shape(["b", 3], inputs, "float_nchw") is None


def test_onnx_io_binding_on_cpu_tensors(onnx_file, model, reference):
    example, ref = reference
    names, args = used_inputs(model, example)
    plain = OnnxEngine(onnx_file, providers=["cpu"])
    bound = OnnxEngine(onnx_file, providers=["cpu"], io_binding=True)
    assert not plain.io_binding and bound.io_binding
    assert plain.device == bound.device == torch.device("cpu") and plain.compute_stream is None
    a = plain(*example)
    b = bound(*example)
    assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
    torch.testing.assert_close(b, torch.from_numpy(a))
    assert torch.allclose(b, ref, atol=1e-4)
    # int32 labels are cast to what the graph takes
    c = bound.run_torch({**dict(zip(names, args, strict=True)), "labels": args[0].int()})
    assert torch.equal(c, b)


@needs_cuda
@pytest.mark.gpu
def test_onnx_cuda_io_binding(onnx_file, reference):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu not installed")
    example, ref = reference
    eng = OnnxEngine(onnx_file, providers=["cuda"])
    assert eng.io_binding and eng.device.type == "cuda" and eng.compute_stream is None
    out = eng(*[None if t is None else t.cuda() for t in example])
    assert out.is_cuda and torch.allclose(out.cpu(), ref, atol=1e-3)
    shared = OnnxEngine(onnx_file, providers=["cuda"], share_stream=True)
    assert shared.share_stream and shared.compute_stream.cuda_stream != 0  # not the default
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # inputs written on another stream: ordered by events
        inputs = [None if t is None else (t.cuda() * 1) for t in example]
        again = shared(*inputs)
    torch.cuda.synchronize()
    assert torch.allclose(again.cpu(), out.cpu(), atol=1e-5)


# ------------------------------------------------------------------ TensorRT
@needs_cuda
@pytest.mark.gpu
def test_tensorrt_build_cache_and_run(onnx_file, tmp_path, reference):
    pytest.importorskip("tensorrt")
    example, ref = reference
    plan = build_engine(onnx_file, tmp_path / "m.engine", batch=(1, 2, 4),
                        timing_cache=tmp_path / "timing.cache", cache_dir=tmp_path / "cache")
    assert (tmp_path / "timing.cache").stat().st_size > 0
    assert len(list((tmp_path / "cache").glob("*.engine"))) == 1
    again = build_engine(onnx_file, tmp_path / "m2.engine", batch=(1, 2, 4),
                         cache_dir=tmp_path / "cache")  # a cache hit: a copy
    assert again.read_bytes() == plan.read_bytes()
    gen = sisgen.load(plan)
    assert gen.backend == "tensorrt" and gen.resolution == (32, 64)
    assert gen.engine.batch_range == (1, 4) and gen.max_batch == 4
    out = gen(*example)
    assert out.is_cuda and torch.allclose(out.float().cpu(), ref, atol=1e-2)
    with pytest.warns(UserWarning, match="--batch 6"):  # batch 6 > max 4: two chunks
        big = gen(*[t.repeat(2, *[1] * (t.dim() - 1)) for t in example])
    assert torch.allclose(big[3:], out, atol=1e-3) and torch.allclose(big[:3], out, atol=1e-3)
    # on torch's default (legacy) stream the engine enqueues on a stream of its own
    assert gen.engine.stream.cuda_stream != 0
    with torch.cuda.stream(torch.cuda.default_stream()):
        again = gen(*example)
    assert torch.allclose(again, out, atol=1e-3)


# ------------------------------------------------------------------ AOTInductor
@slow
def test_aot_package_cpu(model, tmp_path, reference):
    example, ref = reference
    path = model.export(format="aot", file=tmp_path / "m.pt2", batch=2)
    gen = sisgen.load(path)
    assert gen.backend == "aot" and gen.resolution == (32, 64) and gen.uses_edges
    assert gen.engine.batch_range == (1, 2) and gen.max_batch == 2
    assert torch.allclose(gen(*example), ref, atol=1e-4)  # batch 3: chunks of 2 and 1
    assert gen(*[t[:1] for t in example]).shape == (1, 3, 32, 64)


def test_fp16_onnx_precision_and_io_binding(model, reference, tmp_path):
    import inspect

    if "half" not in inspect.signature(export_onnx).parameters:
        pytest.skip("export_onnx has no fp16 option in this version")
    path, _ = export_onnx(model, tmp_path / "h.onnx", half=True, check=False, optimize=False)
    assert onnx_precision(onnx.load(str(path))) == "fp16"
    with pytest.raises(SisgenInputError, match="fp16"):
        build_engine(path, tmp_path / "h.engine", half=False)
    example, ref = reference
    out = OnnxEngine(path, providers=["cpu"], io_binding=True)(*example)
    assert isinstance(out, torch.Tensor) and float((out.float() - ref).abs().max()) < 2e-2
