"""One test over every registered model, at its tiny configuration (timm / diffusers style)."""

from __future__ import annotations

import pytest
import torch

import sisgen
from sisgen.models import available_models, build_model, load_model

MODELS = available_models()


def _tiny(name: str):
    torch.manual_seed(0)
    return build_model(name, dataset="tiny")


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_range(name):
    g = _tiny(name).eval()
    labels, edges, noise, *extra = g.example_inputs(batch_size=2)
    with torch.no_grad():
        out = g(labels, edges, noise, *extra)
    h, w = g.resolution
    assert out.shape[0] == 2 and out.shape[1] == 3
    assert out.shape[-2] % h == 0 and out.shape[-1] % w == 0  # PosGen may render larger
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


def unconnected_parameters(module: torch.nn.Module, output: torch.Tensor) -> list[str]:
    """Names of trainable parameters that the autograd graph of ``output`` does not reach.

    Structural, not numerical: ``allow_unused`` gives ``None`` exactly for a parameter the
    output does not depend on (unused, detached, or frozen by mistake), whatever its
    gradient's value. A true gradient of zero (a bias in front of a normalisation, whose
    rounding lands on 0.0 on some CPUs and 1e-11 on others) is still a connection.
    """
    named = [(n, p) for n, p in module.named_parameters()]
    frozen = [n for n, p in named if not p.requires_grad]
    grads = torch.autograd.grad(output.square().mean(), [p for _, p in named if p.requires_grad],
                                allow_unused=True)
    trainable = [n for n, p in named if p.requires_grad]
    missing = [n for n, g in zip(trainable, grads) if g is None or not torch.isfinite(g).all()]
    return frozen + missing


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_is_connected_and_trainable(name):
    g = _tiny(name).train()
    labels, edges, noise, *extra = g.example_inputs(batch_size=2)
    missing = unconnected_parameters(g, g(labels, edges, noise, *extra))
    assert not missing, f"not connected to the output or not trainable: {missing[:5]}"


def test_connectivity_check_catches_unused_frozen_and_detached_parameters():
    g = _tiny("spade").train()
    g.unused = torch.nn.Parameter(torch.ones(3))
    inputs = g.example_inputs(batch_size=1)
    assert unconnected_parameters(g, g(*inputs)) == ["unused"]
    del g.unused
    first = next(iter(g.parameters()))
    first.requires_grad_(False)
    assert len(unconnected_parameters(g, g(*inputs))) == 1
    first.requires_grad_(True)
    out = g(*inputs)
    assert not unconnected_parameters(g, out)
    assert len(unconnected_parameters(g, out.detach().requires_grad_())) == len(
        list(g.parameters()))


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_and_seed_determinism(name, tmp_path):
    g = _tiny(name)
    labels, edges, noise, *extra = g.example_inputs(batch_size=1)
    g.train()
    g(labels, edges, noise, *extra)  # move norm statistics / power iteration off their init
    g.eval()
    g.save(tmp_path / name)
    back = load_model(tmp_path / name)
    assert back.model_name == name and back.vocabulary is not None
    with torch.no_grad():
        a = g(labels, edges, noise, *extra)
        b = back(labels, edges, noise, *extra)
    assert torch.equal(a, b)
    if noise is not None:  # same seed, same noise, same image; another seed, another image
        n2 = g.sample_noise([1])
        with torch.no_grad():
            c = g(labels, edges, g.sample_noise([0]), *extra)
            d = g(labels, edges, n2, *extra)
        assert torch.equal(c, a) and not torch.equal(c, d)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_parity(name, tmp_path):
    from sisgen.export import export_onnx

    g = _tiny(name)
    g.train()
    g(*g.example_inputs(batch_size=2))
    # the graph optimizer only folds constants (onnxruntime does that again on load) and takes
    # most of the export time; the optimized path is covered by tests/export
    path, parity = export_onnx(g, tmp_path / f"{name}.onnx", optimize=False)
    assert parity.max_abs <= 1e-4, parity
    gen = sisgen.load(path)
    assert gen.model_name == name and tuple(gen.resolution) == tuple(g.resolution)
