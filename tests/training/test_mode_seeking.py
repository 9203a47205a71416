"""The mode-seeking term (MSGAN) of the SPADE objective, with and without the VAE encoder."""

from __future__ import annotations

import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.models import build_model
from sisgen.training.objective import mode_seeking_loss, objective_for

SMALL = {"num_d": 1, "ndf": 4, "n_layers": 2}


def _batch(g, n=2):
    labels, edges, _ = g.example_inputs(n)
    return {"labels": labels, "edges": edges,
            "image": torch.rand(n, 3, *labels.shape[-2:]) * 2 - 1}


def test_closed_form_and_direction():
    z, z2 = torch.zeros(2, 4), torch.ones(2, 4)
    a = torch.zeros(2, 3, 8, 8)
    # images half as far apart as the noises: 1 / 0.5
    assert mode_seeking_loss(a, a + 0.5, z, z2).item() == pytest.approx(2.0, rel=1e-3)
    # the same image from both noises: the term is huge (1 / eps)
    assert mode_seeking_loss(a, a, z, z2).item() > 1e4
    assert mode_seeking_loss(a, a + 1.0, z, z2) < mode_seeking_loss(a, a + 0.5, z, z2)


@pytest.mark.parametrize("kld", [0.0, 0.05])
def test_term_reaches_the_generator(kld):
    torch.manual_seed(0)
    g = build_model("spade", dataset="tiny", z_dim=8, ngf=4).train()
    objective = objective_for(g, {"ms": 1.0, "kld": kld}, SMALL,
                              encoder={"ngf": 2, "input_size": 64} if kld else None)
    loss, terms, fake = objective.generator_loss(g, _batch(g), torch.randn(2, 8))
    assert {"g_ms", "g_gan"} <= set(terms) and ("g_kld" in terms) == bool(kld)
    assert torch.isfinite(terms["g_ms"]) and terms["g_ms"] > 0
    terms["g_ms"].backward()
    # only the noise path can make two images of one map differ: it gets the gradient
    assert g.fc.weight.grad is not None and g.fc.weight.grad.abs().sum() > 0
    if kld:
        assert objective.g_nets["E"].fc_mu.weight.grad.abs().sum() > 0


def test_needs_a_generator_that_takes_noise():
    g = build_model("spade", dataset="tiny", z_dim=0, ngf=4)
    objective = objective_for(g, {"ms": 1.0}, SMALL)
    with pytest.raises(SisgenInputError, match="mode seeking"):
        objective.generator_loss(g, _batch(g), None)
