"""The VAE KL term and the encoder step of SPADE's multi-modal training."""

from __future__ import annotations

import math

import torch

from sisgen.models import build_model
from sisgen.models.encoder import ConvEncoder
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
