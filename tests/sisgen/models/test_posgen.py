"""PosGen specifics: continuous coordinates, any output scale, Fourier features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sisgen.models import build_model, load_model
from sisgen.models.posgen import FourierFeatures, PosGenGenerator, pixel_coordinates


def _tiny(**overrides) -> PosGenGenerator:
    torch.manual_seed(0)
    return build_model("posgen", dataset="tiny", **overrides)


def test_output_scale_2_renders_twice_the_label_size():
    g = _tiny(output_scale=2).eval()
    labels, edges, noise = g.example_inputs(batch_size=2)
    assert labels.shape == (2, 64, 64)
    with torch.no_grad():
        out = g(labels, edges, noise)
    assert out.shape == (2, 3, 128, 128)
    assert g.output_resolution == (128, 128) and g.resolution == (64, 64)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


def test_non_integer_scale_and_same_weights_at_every_scale():
    g1 = _tiny().eval()
    g15 = _tiny(output_scale=1.5).eval()
    g15.load_state_dict(g1.state_dict())  # no resolution-dependent parameters
    labels, edges, noise = g1.example_inputs(batch_size=1)
    with torch.no_grad():
        out = g15(labels, edges, noise)
        feats = g1.features(labels, edges, noise)
        # the decoder can be queried on any grid from the same trunk features
        torch.testing.assert_close(g1.decode(feats, (96, 96)), out)
        torch.testing.assert_close(g1.decode(feats, (64, 64)), g1(labels, edges, noise))
    assert out.shape == (1, 3, 96, 96)


def test_pixel_coordinates_are_continuous_across_scales():
    c1 = pixel_coordinates(4, 8)
    c2 = pixel_coordinates(8, 16)
    assert c1.shape == (1, 2, 4, 8)
    # x varies along the width, y along the height, pixel centres inside (-1, 1)
    assert torch.allclose(c1[0, 0, 0], (torch.arange(8) + 0.5) / 4 - 1)
    assert torch.allclose(c1[0, 1, :, 0], (torch.arange(4) + 0.5) / 2 - 1)
    assert c2.abs().max() < 1
    # a 2x2 block of the fine grid averages to the coarse pixel centre
    torch.testing.assert_close(F.avg_pool2d(c2, 2), c1)


def test_fourier_features_shape_and_unit_pairs():
    ff = FourierFeatures(6, 5, coord_channels=2, coord_scale=10.0)
    v = torch.randn(2, 6, 3, 4)
    out = ff(v)
    assert ff.out_channels == 10 and out.shape == (2, 10, 3, 4)
    sin, cos = out[:, :5], out[:, 5:]
    assert torch.allclose(sin**2 + cos**2, torch.ones_like(sin), atol=1e-5)
    arg = 2 * torch.pi * torch.einsum("fc,bchw->bfhw", ff.proj.weight[:, :, 0, 0], v)
    assert torch.allclose(sin, torch.sin(arg), atol=1e-4)
    # coordinate columns start with the Tancik spread, feature columns ~ 1/sqrt(C)
    w = ff.proj.weight[:, :, 0, 0]
    assert w[:, 4:].abs().mean() > w[:, :4].abs().mean()


def test_deterministic_mode_and_dontcare():
    g = _tiny(z_dim=0, dontcare=True, use_edges=False).eval()
    assert g.noise_shape() == () and g.noise_spec() == {}
    labels, edges, noise = g.example_inputs(batch_size=2)
    assert edges is None and noise is None
    labels[:, :8] = 255  # ignore pixels go to the dontcare channel
    with torch.no_grad():
        a = g(labels)
        b = g(labels)
    assert a.shape == (2, 3, 64, 64) and torch.equal(a, b)
    assert g.condition(labels, None).shape[1] == 5 + 1


def test_noise_changes_the_image_and_inputs_are_checked():
    g = _tiny().eval()
    labels, edges, noise = g.example_inputs(batch_size=1)
    with torch.no_grad():
        a = g(labels, edges, noise)
        b = g(labels, edges, g.sample_noise([7]))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="edges"):
        g(labels, None, noise)
    with pytest.raises(ValueError, match="noise"):
        g(labels, edges, None)
    with pytest.raises(ValueError, match="64x64"):
        g(labels[:, :32, :32], edges[..., :32, :32], noise)
    with pytest.raises(ValueError, match="multiples of"):
        PosGenGenerator(num_classes=5, height=48, width=64)
    with pytest.raises(ValueError, match="output_scale"):
        PosGenGenerator(num_classes=5, height=64, width=64, output_scale=0)


def test_save_load_keeps_output_scale(tmp_path):
    g = _tiny(output_scale=2).eval()
    g.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.config["output_scale"] == 2 and back.output_resolution == (128, 128)
    labels, edges, noise = g.example_inputs(batch_size=1)
    with torch.no_grad():
        assert torch.equal(g(labels, edges, noise), back(labels, edges, noise))


def test_backward_step_at_2x():
    g = _tiny(output_scale=2).train()
    labels, edges, noise = g.example_inputs(batch_size=1)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    loss = g(labels, edges, noise).square().mean()
    loss.backward()
    assert g.fourier.proj.weight.grad.abs().sum() > 0
    assert g.conv_img.weight.grad.abs().sum() > 0
    opt.step()

