"""The VAE KL term and the encoder step of SPADE's multi-modal training."""

from __future__ import annotations

import math

import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.models import build_model
from sisgen.models.encoder import ConvEncoder
from sisgen.training.objective import objective_for
from sisgen.training.vae import LAMBDA_KLD, encode_style, kl_divergence


def test_kl_closed_form():
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    assert kl_divergence(mu, logvar).item() == 0.0  # N(0, I) against itself
    # one code: mu = 1, var = e -> 0.5 * (e + 1 - 1 - 1) = 0.5 * (e - 1)
    kl = kl_divergence(torch.ones(1, 1), torch.ones(1, 1))
    assert math.isclose(kl.item(), 0.5 * (math.e - 1), rel_tol=1e-6)
    # summed over batch and code
    assert math.isclose(kl_divergence(torch.ones(3, 5), torch.zeros(3, 5)).item(), 7.5)


def test_encoder_generator_backward_step():
    torch.manual_seed(0)
    enc = ConvEncoder(ngf=2, z_dim=8, input_size=64)
    g = build_model("spade", dataset="tiny", z_dim=8).train()
    opt = torch.optim.Adam(list(enc.parameters()) + list(g.parameters()), lr=1e-3)
    photo = torch.rand(2, 3, 64, 64) * 2 - 1
    labels, edges, _ = g.example_inputs(2)
    z, kld = encode_style(enc, photo, eps=torch.randn(2, 8))
    assert z.shape == (2, 8) and kld.ndim == 0 and kld.item() >= 0
    mu, logvar = enc(photo)
    assert torch.allclose(kld, LAMBDA_KLD * kl_divergence(mu, logvar))
    loss = (g(labels, edges, z) - photo).abs().mean() + kld
    loss.backward()
    assert all(p.grad is not None for p in enc.parameters())
    assert enc.fc_mu.weight.grad.abs().sum() > 0
    opt.step()
    enc.eval()  # fixed spectral-norm vectors: two calls give the same codes
    z0, _ = encode_style(enc, photo, eps=torch.zeros(2, 8))
    assert torch.allclose(z0, enc(photo)[0])  # eps = 0: the mean style


def test_objective_sizes_the_encoder_from_its_arguments():
    g = build_model("spade", dataset="tiny", z_dim=8, ngf=4)
    small = {"num_d": 1, "ndf": 4, "n_layers": 2}
    default = objective_for(g, {"kld": 0.05}, small).g_nets["E"]
    # the official rule: the encoder is as wide as the generator, on a 256x256 photo
    assert default.layer1[0].out_channels == 4 and default.num_layers == 6
    enc = objective_for(g, {"kld": 0.05}, small, encoder={"ngf": 2, "input_size": 64}
                        ).g_nets["E"]
    assert enc.layer1[0].out_channels == 2 and enc.num_layers == 5 and enc.input_size == 64
    mu, logvar = enc(torch.rand(3, 3, 32, 48) * 2 - 1)
    assert mu.shape == logvar.shape == (3, 8)
    assert "E" not in objective_for(g, {"kld": 0.0}, small, encoder={"ngf": 2}).g_nets
    with pytest.raises(SisgenInputError, match="encoder arguments.*width"):
        objective_for(g, {"kld": 0.05}, small, encoder={"width": 2})
    with pytest.raises(SisgenInputError, match="encoder arguments"):
        objective_for(build_model("oasis", dataset="tiny"), {}, encoder={"ngf": 2})
    with pytest.raises(SisgenInputError, match="z_dim > 0"):
        objective_for(build_model("spade", dataset="tiny", z_dim=0), {"kld": 0.05}, small)
    # CC-FPSE trains the same encoder
    ccfpse = build_model("ccfpse", dataset="tiny", z_dim=8)
    enc = objective_for(ccfpse, {"kld": 0.05, "vgg": 0.0}, {"ndf": 4},
                        encoder={"ngf": 2, "input_size": 64}).g_nets["E"]
    assert isinstance(enc, ConvEncoder) and enc.input_size == 64
