"""Engine I/O on CUDA: pinned reused buffers, the dedicated stream, device-side widening.

Skipped without a CUDA device. GPU convolutions differ from the CPU's in the last bits, so
images are compared with the same engine's host-side path (``prepare`` + ``images_to_uint8``)
or within one uint8 level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisgen.engines import Generator, images_to_uint8
from sisgen.engines.device import instance_edges_torch, to_uint8_nhwc
from sisgen.engines.torch_engine import TorchEngine
from sisgen.labelmap import instance_edges
from sisgen.models import build_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SEEDS = [1, 2, 3, 4]


def blob_maps(h: int, w: int, n: int = 4):
    from sisgen.labelmap import LabelMap

    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        sem = rng.integers(0, 5, (h // 8, w // 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
        inst = (np.arange(h * w).reshape(h, w) // (w * 8)).astype(np.int32)
        out.append(LabelMap(sem, inst if i % 2 == 0 else None, {"id": f"m{i}"}))
    return out


def _generator(name: str, **engine) -> Generator:
    torch.manual_seed(0)
    model = build_model(name, dataset="tiny").eval()
    return Generator.from_model(TorchEngine(model, "cuda", **engine), model, model_hash="")


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("name", ["spade", "oasis", "clade_icpe", "sesame", "va_spade"])
def test_cuda_run_matches_the_host_path(name):
    gen = _generator(name)
    lms = blob_maps(*gen.resolution)
    want = images_to_uint8(gen(*gen.prepare(lms, SEEDS)))
    got = gen.run(gen.input_spec.build(lms, SEEDS))
    assert got.shape == want.shape and _diff(got, want) <= 1
    assert torch.backends.cudnn.benchmark  # set by the CUDA torch engine


def test_feeder_uses_a_dedicated_stream_and_reuses_pinned_buffers():
    gen = _generator("spade")
    batch = gen.input_spec.build(blob_maps(*gen.resolution), SEEDS)
    first = gen.run(batch)
    feeder = gen._feeder()
    assert feeder.cuda and feeder.stream.cuda_stream != 0
    assert feeder.stream.cuda_stream != torch.cuda.default_stream().cuda_stream
    allocated = feeder.pool.allocated
    for _ in range(3):
        assert np.array_equal(gen.run(batch), first)
    assert feeder.pool.allocated == allocated  # the same pinned buffers, reused
    bufs = [b for entries in feeder.pool._free.values() for b, _ in entries]
    assert bufs and all(b.is_pinned() for b in bufs)


def test_submit_ahead_keeps_order():
    gen = _generator("oasis")
    maps = blob_maps(*gen.resolution)
    a = gen.input_spec.build(maps, SEEDS)
    b = gen.input_spec.build(maps[::-1], SEEDS[::-1])
    ra, rb = gen.run(a), gen.run(b)
    pa, pb = gen.submit(a), gen.submit(b)  # the second is enqueued before the first is read
    assert np.array_equal(pb.result(), rb) and np.array_equal(pa.result(), ra)


def test_cudagraphs_half_and_channels_last_run():
    eager = _generator("spade")
    lms = blob_maps(*eager.resolution)
    ref = eager.run(eager.input_spec.build(lms, SEEDS))
    graphs = _generator("spade", mode="cudagraphs")
    batch = graphs.input_spec.build(lms, SEEDS)
    assert _diff(graphs.run(batch), ref) <= 1
    short = graphs.input_spec.build(lms[:3], SEEDS[:3])  # replayed in the batch-4 graph
    assert _diff(graphs.run(short), ref[:3]) <= 1
    for half in ("fp16", "bf16"):
        fast = _generator("spade", half=half, channels_last=True)
        out = fast.run(fast.input_spec.build(lms, SEEDS))
        assert out.shape == ref.shape and np.abs(out.astype(int) - ref).mean() < 4


def test_device_ops_equal_numpy_on_cuda():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, (2, 31, 47)).astype(np.int32)
    edges = instance_edges_torch(torch.from_numpy(ids).cuda())
    assert np.array_equal(edges[:, 0].cpu().numpy(), instance_edges(ids))
    x = torch.from_numpy(rng.uniform(-1.2, 1.2, (2, 3, 9, 11)).astype(np.float32))
    assert np.array_equal(to_uint8_nhwc(x.cuda()).cpu().numpy(), images_to_uint8(x))
