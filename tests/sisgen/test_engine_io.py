"""Engine I/O: compact host batches (InputSpec.build) and device feeding (Generator.run).

The contract: ``generator.run(generator.input_spec.build(maps, seeds))`` gives the bytes of
``images_to_uint8(generator(*generator.prepare(maps, seeds)))`` for every zoo model, through
torch and through onnxruntime, with noise-region marks and photos too. Exporting to ONNX
takes 5-20 s per model on a loaded 2-core machine, so by default onnxruntime runs one model
per input form (edges, vector / replicated / per-pixel noise, instances, features, photo);
``SISGEN_SLOW=1`` runs every zoo model through it. What needs CUDA (pinned buffers,
streams) is checked in ``test_engine_io_gpu.py``.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

import sisgen
from sisgen.engines import EngineBatch, Generator, InputSpec, images_to_uint8
from sisgen.engines.device import (
    DeviceFeeder,
    HostBufferPool,
    PendingImages,
    instance_edges_torch,
    to_uint8_nhwc,
)
from sisgen.engines.inputs import compact_instance_ids
from sisgen.engines.torch_engine import TorchEngine
from sisgen.labelmap import HOLE_KEY, NOISE_MASK_KEY, PHOTO_KEY, LabelMap, instance_edges
from sisgen.models import available_models, build_model
from sisgen.noise import draw_noise, expand_noise, noise_from_seeds

SEEDS = [3, 5, 7]
ZOO = [*available_models(), "pix2pixhd_features"]
#: One model per input form: edges, vector / replicated / per-pixel noise, instances,
#: per-object features, photo editing.
ONNX_MODELS = ZOO if os.environ.get("SISGEN_SLOW") == "1" else [
    "spade", "posgen", "oasis", "va_spade", "clade_icpe", "pix2pixhd_features", "sesame"]


def blob_map(h: int, w: int, seed: int, instance: bool = True, classes: int = 5) -> LabelMap:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform(size=(9, 2)) * [h, w]
    cell = ((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
            ).argmin(-1)
    sem = rng.integers(0, classes, 9)[cell].astype(np.uint8)
    sem[h // 3:h // 3 + 4, w // 4:w // 4 + 5] = 255
    inst = None
    if instance:
        inst = (cell * 37 + 1000).astype(np.int32)
        inst[sem == 0] = 0
    return LabelMap(sem, inst, {"id": f"m{seed}"})


def maps(h: int, w: int) -> list[LabelMap]:
    """A map with instances, one without, one at twice the size (resized by the host)."""
    return [blob_map(h, w, 10), blob_map(h, w, 11, instance=False), blob_map(2 * h, 2 * w, 12)]


def marked(lms: list[LabelMap]) -> list[LabelMap]:
    out = []
    for i, lm in enumerate(lms):
        lm = lm.copy()
        if i != 1:
            mark = np.zeros(lm.shape, bool)
            mark[: lm.shape[0] // 2, lm.shape[1] // 3:] = True
            lm.meta[NOISE_MASK_KEY] = mark
        out.append(lm)
    return out


def with_photo(lms: list[LabelMap]) -> list[LabelMap]:
    out = []
    for i, lm in enumerate(lms):
        lm = lm.copy()
        if i != 1:
            lm.meta[PHOTO_KEY] = np.random.default_rng(i).integers(0, 256, (*lm.shape, 3),
                                                                   dtype=np.uint8)
            hole = np.zeros(lm.shape, bool)
            hole[5:17, 3:29] = True
            lm.meta[HOLE_KEY] = hole
        out.append(lm)
    return out


def feature_model():
    torch.manual_seed(0)
    m = build_model("pix2pixhd", dataset="toycity", ngf=4, n_downsample_global=2,
                    n_blocks_global=1, feat_num=3, height=32, width=64).eval()
    m.feature_clusters = {1: np.array([[-0.9, 0, 0], [0.9, 0, 0], [0, -0.9, 0]], np.float32),
                          2: np.array([[0, 0, -0.5], [0, 0, 0.5]], np.float32),
                          3: np.array([[0.1, 0.2, 0.3]], np.float32)}
    return m


def zoo_model(name: str):
    if name == "pix2pixhd_features":
        return feature_model()
    torch.manual_seed(0)
    return build_model(name, dataset="tiny").eval()


def cases(gen: Generator):
    lms = maps(*gen.resolution)
    yield "plain", lms, None
    if gen.spatial_noise or gen.takes_features:
        yield "marks", marked(lms), [1, 1, 2]
    if gen.takes_photo:
        yield "photo", with_photo(lms), None


def check_run_matches_prepare(gen: Generator) -> int:
    """Assert run(build) == images_to_uint8(gen(*prepare)) for every case; returns cases."""
    spec = pickle.loads(pickle.dumps(gen.input_spec))  # what a worker process gets
    n = 0
    for case, lms, base in cases(gen):
        want = images_to_uint8(gen(*gen.prepare(lms, SEEDS, base_seeds=base)))
        sized = [lm.resized(gen.resolution) for lm in lms]
        batch = pickle.loads(pickle.dumps(spec.build(sized, SEEDS, base_seeds=base)))
        got = gen.run(batch)
        assert got.dtype == np.uint8 and got.shape == want.shape, case
        assert np.array_equal(got, want), f"{gen.model_name} {gen.backend} {case}"
        n += 1
    return n


@pytest.mark.parametrize("name", ZOO)
def test_run_is_bit_identical_to_prepare_torch(name):
    model = zoo_model(name)
    gen = Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="")
    assert check_run_matches_prepare(gen) >= 1
    # generate() goes through build + run
    lms = maps(*gen.resolution)
    assert np.array_equal(np.stack(gen.generate(lms, SEEDS)),
                          images_to_uint8(gen(*gen.prepare(lms, SEEDS))))


@pytest.mark.parametrize("name", ONNX_MODELS)
def test_run_is_bit_identical_to_prepare_onnxruntime(name, tmp_path):
    from sisgen.export.onnx import export_onnx

    model = zoo_model(name)
    path, _ = export_onnx(model, tmp_path / f"{name}.onnx", check=False, optimize=False)
    gen = sisgen.load(path, providers=["cpu"], threads=1)
    assert gen.device == torch.device("cpu")
    assert check_run_matches_prepare(gen) >= 1


# ------------------------------------------------------------------- compact batches
def _generator(name: str) -> Generator:
    model = zoo_model(name)
    return Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="")


def test_batches_are_compact_and_picklable():
    oasis = _generator("oasis")  # replicated noise, no edges
    spec = oasis.input_spec
    assert spec.spatial_noise and not spec.uses_edges
    batch = spec.build([lm.resized(oasis.resolution) for lm in maps(64, 64)], SEEDS)
    assert batch.labels.dtype == np.uint8 and batch.labels.shape == (3, 64, 64)
    assert batch.edge_ids is None and batch.instances is None
    assert batch.noise.shape == (3, 8) and batch.noise.dtype == np.float32
    assert batch.seeds.tolist() == SEEDS and len(batch) == 3
    full = sum(t.numel() * t.element_size() for t in oasis.prepare(maps(64, 64), SEEDS))
    assert batch.nbytes * 20 < full
    again = pickle.loads(pickle.dumps(batch))
    assert np.array_equal(again.noise, batch.noise)
    # one vector per sample: the expanded noise is the drawn noise
    assert torch.equal(expand_noise(torch.from_numpy(batch.noise), spec.noise_spec),
                       noise_from_seeds(spec.noise_spec, SEEDS))

    icpe = _generator("clade_icpe").input_spec
    b = icpe.build([lm.resized((64, 64)) for lm in maps(64, 64)], SEEDS)
    assert b.edge_ids.dtype == np.int32 and b.instances.dtype == np.int32
    assert b.noise is None and b.instances[1].max() == 0 and b.instances[0].max() > 0
    # maps without instances take their edges from the class ids
    assert np.array_equal(b.edge_ids[1], b.labels[1].astype(np.int32))


def test_marks_on_replicated_noise_send_the_full_map():
    gen = _generator("oasis")
    lms = [lm.resized((64, 64)) for lm in marked(maps(64, 64))]
    batch = gen.input_spec.build(lms, SEEDS, base_seeds=[1, 1, 2])
    assert batch.noise.shape == (3, 8, 64, 64)
    with pytest.raises(ValueError, match="base_seeds"):
        gen.input_spec.build(lms, SEEDS)
    spade = _generator("ccfpse")  # a noise vector: marks cannot be honoured
    with pytest.raises(ValueError, match="noise vector"):
        spade.input_spec.build(lms, SEEDS, base_seeds=SEEDS)


def test_build_checks_its_inputs():
    spec = _generator("spade").input_spec
    lms = maps(64, 64)
    with pytest.raises(ValueError, match="resize it first"):
        spec.build(lms, SEEDS)
    sized = [lm.resized((64, 64)) for lm in lms]
    with pytest.raises(ValueError, match="one seed per label map"):
        spec.build(sized, SEEDS[:2])
    wide = LabelMap(np.full((64, 64), 300, np.int32), None, {"id": "wide"})
    with pytest.raises(ValueError, match="0..255"):
        spec.build([wide], [0])
    ok = LabelMap(np.full((64, 64), 4, np.int64), None, {"id": "int64"})
    assert spec.build([ok], [0]).labels.dtype == np.uint8
    assert spec.build([ok], [2**64 - 1]).seeds.tolist() == [2**64 - 1]  # torch takes these


def test_photos_cross_as_bytes():
    gen = _generator("sesame")
    lms = [lm.resized((64, 64)) for lm in with_photo(maps(64, 64))]
    batch = gen.input_spec.build(lms, SEEDS)
    assert batch.image.dtype == np.uint8 and batch.image.shape == (3, 64, 64, 3)
    assert batch.has_photo.tolist() == [True, False, True]
    assert batch.mask.dtype == np.uint8 and batch.mask[1].min() == 1
    # a float photo travels as float, with the same values prepare gives
    floaty = [lm.copy() for lm in lms]
    floaty[0].meta[PHOTO_KEY] = floaty[0].meta[PHOTO_KEY].astype(np.float32)
    fb = gen.input_spec.build(floaty, SEEDS)
    assert fb.image.dtype == np.float32 and fb.has_photo is None
    prepared = gen.prepare(floaty, SEEDS)
    assert torch.equal(torch.from_numpy(fb.image), prepared[5])
    assert np.array_equal(gen.run(fb), images_to_uint8(gen(*prepared)))


def test_concat_equals_one_build():
    gen = _generator("oasis")
    lms = [lm.resized((64, 64)) for lm in marked(maps(64, 64))]
    lms[1].meta.pop(NOISE_MASK_KEY, None)
    whole = gen.input_spec.build(lms, SEEDS, base_seeds=[1, 1, 2])
    parts = [gen.input_spec.build([lm], [s], base_seeds=[b])
             for lm, s, b in zip(lms, SEEDS, [1, 1, 2], strict=True)]
    assert parts[1].noise.ndim == 2 and parts[0].noise.ndim == 4  # compact and full
    joined = EngineBatch.concat(parts)
    assert np.array_equal(joined.noise, whole.noise)
    assert np.array_equal(joined.labels, whole.labels)
    assert np.array_equal(gen.run(joined), gen.run(whole))
    assert joined.slice(1, 3).labels.shape[0] == 2

    ses = _generator("sesame")
    photos = [lm.resized((64, 64)) for lm in with_photo(maps(64, 64))]
    photos[2].meta[PHOTO_KEY] = photos[2].meta[PHOTO_KEY].astype(np.float32)
    whole = ses.input_spec.build(photos, SEEDS)
    parts = [ses.input_spec.build([lm], [s]) for lm, s in zip(photos, SEEDS, strict=True)]
    joined = EngineBatch.concat(parts)
    assert np.array_equal(joined.image, whole.image) and joined.has_photo is None
    with pytest.raises(ValueError, match="different inputs"):
        EngineBatch.concat([parts[0], gen.input_spec.build(lms[:1], [0], base_seeds=[0])])


# ------------------------------------------------------------------ device-side ops
def test_instance_edges_torch_equals_numpy():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, (3, 17, 23)).repeat(2, 1).astype(np.int32) * 1_000_003
    ids[0, :5] = 0
    got = instance_edges_torch(torch.from_numpy(ids))
    assert got.shape == (3, 1, 34, 23) and got.dtype == torch.float32 and got.is_contiguous()
    assert np.array_equal(got[:, 0].numpy(), instance_edges(ids))
    one = np.array([[[7]]], np.int32)
    assert instance_edges_torch(torch.from_numpy(one)).sum() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_to_uint8_nhwc_equals_images_to_uint8(dtype):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.3, 1.3, (2, 3, 8, 9))
    ties = (np.arange(-3, 259) + 0.5) / 127.5 - 1.0  # exact .5 before rounding: half-to-even
    x.reshape(-1)[: len(ties)] = ties
    t = torch.from_numpy(x).to(dtype)
    got = to_uint8_nhwc(t)
    assert got.dtype == torch.uint8 and got.shape == (2, 8, 9, 3) and got.is_contiguous()
    assert np.array_equal(got.numpy(), images_to_uint8(t))
    already = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    assert to_uint8_nhwc(already) is already
    bf = to_uint8_nhwc(t.to(torch.bfloat16))  # numpy has no bfloat16: via float32
    assert np.array_equal(bf.numpy(), images_to_uint8(t.to(torch.bfloat16).float()))


def test_compact_noise_draws_what_full_noise_draws():
    spec = {"shape": [4, 6, 8], "distribution": "normal", "layout": "replicated"}
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    full = draw_noise(spec, 2, g1)
    compact = draw_noise(spec, 2, g2, compact=True)
    assert compact.shape == (2, 4) and torch.equal(expand_noise(compact, spec), full)
    assert expand_noise(full, spec) is full and expand_noise(None, spec) is None
    pixel = {"shape": [2, 3, 3]}
    assert torch.equal(noise_from_seeds(pixel, [1], compact=True), noise_from_seeds(pixel, [1]))


def test_compact_instance_ids_fast_path_equals_sort():
    rng = np.random.default_rng(2)
    for ids in (rng.integers(0, 40, (30, 20)) * 1000 + 7,  # Cityscapes-like, table path
                rng.integers(0, 1 << 24, (30, 20)),  # panoptic-like, sort path
                rng.integers(-5, 5, (30, 20)), np.zeros((3, 3), np.int32)):
        ids = ids.astype(np.int32)
        ids[0, :4] = 0
        u = np.unique(ids)
        u = u[u != 0]
        want = np.where(ids == 0, 0, np.searchsorted(u, ids) + 1)
        got = compact_instance_ids(ids)
        assert got.dtype == np.int64 and np.array_equal(got, want)
        assert compact_instance_ids(ids, np.int32).dtype == np.int32


# ------------------------------------------------------------- staging on the CPU
class _Event:
    def __init__(self, done: bool):
        self.done, self.waited = done, False

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        self.waited, self.done = True, True


def test_host_buffer_pool_reuses_finished_buffers():
    pool = HostBufferPool(pin=False, per_key=2)
    a = pool.take((2, 3), torch.uint8)
    busy_a = _Event(done=False)
    pool.give(a, busy_a)
    b = pool.take((2, 3), torch.uint8)
    assert b is not a and pool.allocated == 2  # a is still being copied
    pool.give(b, _Event(done=True))
    assert pool.take((2, 3), torch.uint8) is b  # finished: reused
    busy_b = _Event(False)
    pool.give(b, busy_b)
    c = pool.take((2, 3), torch.uint8)  # both in flight and the pool full: wait for the oldest
    assert c is a and busy_a.waited and not busy_b.waited and pool.allocated == 2
    assert pool.take((4,), torch.float32).shape == (4,)


def test_cpu_feeder_and_pending_images():
    feeder = DeviceFeeder("cpu")
    assert not feeder.cuda and feeder.stream is None
    batch = EngineBatch(labels=np.zeros((1, 2, 2), np.uint8), seeds=np.array([0]))
    with feeder.active():
        t = feeder.upload(batch)
    assert set(t) == {"labels"} and t["labels"].dtype == torch.uint8
    pending = feeder.fetch(torch.ones(1, 2, 2, 3, dtype=torch.uint8))
    assert isinstance(pending, PendingImages) and pending.done()
    assert pending.result().sum() == 12 and pending.result() is pending.result()


def test_generator_feeds_the_engine_on_its_device(monkeypatch):
    gen = _generator("spade")
    assert gen.device == torch.device("cpu") and gen.max_batch is None
    lms = [lm.resized((64, 64)) for lm in maps(64, 64)]
    seen = {}
    real = gen.engine.__call__

    def spy(labels, edges, noise, **extra):
        seen.update(labels=labels, edges=edges, noise=noise, **extra)
        return real(labels, edges, noise, **extra)

    monkeypatch.setattr(gen, "engine", type("E", (), {"__call__": staticmethod(spy),
                                                      "input_names": gen.engine.input_names,
                                                      "device": "cpu"})())
    pending = gen.submit(gen.input_spec.build(lms, SEEDS))
    assert pending.result().shape == (3, 64, 64, 3)
    assert seen["labels"].dtype == torch.int64 and seen["edges"].shape == (3, 1, 64, 64)


def test_input_spec_matches_the_generator():
    gen = _generator("clade_icpe")
    spec = gen.input_spec
    assert isinstance(spec, InputSpec)
    assert spec.resolution == gen.resolution and spec.noise_spec == gen.noise_spec
    assert spec.takes_instances and not spec.takes_features and not spec.takes_photo
    assert spec.uses_edges == gen.uses_edges and spec.model_name == gen.model_name
    assert _generator("sesame").input_spec.takes_photo
    assert _generator("pix2pixhd_features").input_spec.feature_clusters is not None


def test_cli_engine_options(tmp_path, capsys):
    from sisgen.cli import build_parser, main
    from sisgen.export.onnx import export_onnx

    args = build_parser().parse_args(["generate", "--model", "m", "--source", "toycity",
                                      "--out", "o", "--mode", "cudagraphs", "--half",
                                      "--channels-last"])
    assert (args.mode, args.half, args.channels_last) == ("cudagraphs", True, True)
    ev = build_parser().parse_args(["eval", "--model", "m", "--source", "toycity"])
    assert (ev.mode, ev.half, ev.channels_last) == ("eager", False, False)
    model = zoo_model("spade")
    folder = model.save(tmp_path / "m")
    if not torch.cuda.is_available():
        assert main(["generate", "--model", str(folder), "--source", "toycity",
                     "--out", str(tmp_path / "a"), "--mode", "cudagraphs"]) == 2
        assert "CUDA" in capsys.readouterr().err
    path, _ = export_onnx(model, tmp_path / "m.onnx", check=False, optimize=False)
    assert main(["generate", "--model", str(path), "--source", "toycity",
                 "--out", str(tmp_path / "b"), "--half"]) == 2
    assert "only apply to model folders" in capsys.readouterr().err


def test_run_takes_host_arrays_from_engines():
    class Broadcast:  # returns read-only broadcast arrays, as a "null" engine does
        input_names = ("labels", "edges", "noise")

        def __init__(self, value):
            self.value = value

        def __call__(self, labels, edges=None, noise=None, **extra):
            return np.broadcast_to(self.value, (labels.shape[0], *self.value.shape))

    lms = [LabelMap(np.zeros((4, 6), np.uint8), None, {"id": "z"})] * 2
    photo = np.arange(72, dtype=np.uint8).reshape(4, 6, 3)
    gen = Generator(Broadcast(photo), None, (4, 6), {})
    out = gen.run(gen.input_spec.build(lms, [0, 1]))
    assert out.flags.writeable and out.flags.c_contiguous and np.array_equal(out[1], photo)
    image = np.linspace(-1, 1, 72, dtype=np.float32).reshape(3, 4, 6)
    gen = Generator(Broadcast(image), None, (4, 6), {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gen.run(gen.input_spec.build(lms, [0, 1]))
    assert np.array_equal(out, images_to_uint8(np.broadcast_to(image, (2, 3, 4, 6))))
