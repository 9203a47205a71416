"""Local noise resampling: only the marked region gets new noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisgen import LabelMap
from sisgen.engines import Generator
from sisgen.labelmap import NOISE_MASK_KEY
from sisgen.noise import noise_from_seeds


class EchoNoise:
    """A stand-in engine that returns its noise, so tests can see what it was given."""

    input_names = ("labels", "edges", "noise")

    def __call__(self, labels, edges, noise):
        return noise


def spatial_generator() -> Generator:
    return Generator(EchoNoise(), None, (8, 8), {"shape": [3, 8, 8], "distribution": "normal"})


def test_mask_resamples_only_inside_the_region():
    gen = spatial_generator()
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True
    marked = LabelMap(np.zeros((8, 8), np.uint8), None, {"id": "a", NOISE_MASK_KEY: mask})
    plain = LabelMap(np.zeros((8, 8), np.uint8), None, {"id": "b"})
    _, _, noise = gen.prepare([marked, plain], seeds=[11, 12], base_seeds=[10, 10])
    base = noise_from_seeds(gen.noise_spec, [10])[0]
    own = noise_from_seeds(gen.noise_spec, [11])[0]
    m = torch.from_numpy(mask)
    assert torch.equal(noise[0][:, m], own[:, m])          # marked region: the sample's seed
    assert torch.equal(noise[0][:, ~m], base[:, ~m])       # elsewhere: the map's base style
    assert torch.equal(noise[1], noise_from_seeds(gen.noise_spec, [12])[0])  # unmarked: own


def test_mask_is_resized_to_the_noise_resolution():
    gen = spatial_generator()
    mask = np.zeros((16, 16), bool)
    mask[:8] = True  # top half at twice the resolution
    lm = LabelMap(np.zeros((16, 16), np.uint8), None, {"id": "a", NOISE_MASK_KEY: mask})
    _, _, noise = gen.prepare([lm], seeds=[1], base_seeds=[0])
    base = noise_from_seeds(gen.noise_spec, [0])[0]
    assert torch.equal(noise[0][:, 4:], base[:, 4:])
    assert not torch.equal(noise[0][:, :4], base[:, :4])


def test_vector_noise_models_refuse_marks():
    gen = Generator(EchoNoise(), None, (8, 8), {"shape": [4], "distribution": "normal"})
    meta = {"id": "a", NOISE_MASK_KEY: np.ones((8, 8), bool)}
    lm = LabelMap(np.zeros((8, 8), np.uint8), None, meta)
    with pytest.raises(ValueError, match="spatial noise"):
        gen.prepare([lm], seeds=[1], base_seeds=[0])


def test_oasis_noise_is_one_vector_per_image_as_the_paper_draws_it():
    from sisgen.models import build_model
    from sisgen.noise import noise_from_seeds

    oasis = build_model("oasis", dataset="tiny")
    spec = oasis.noise_spec()
    assert spec["layout"] == "replicated"
    z = noise_from_seeds(spec, [1, 2])
    assert z.shape == (2, *spec["shape"])
    # constant over pixels, different per seed and per channel
    assert torch.equal(z, z[:, :, :1, :1].expand_as(z))
    assert not torch.equal(z[0], z[1]) and z[0, :, 0, 0].std() > 0
    assert torch.equal(noise_from_seeds(spec, [2])[0], z[1])
    va = build_model("va_oasis", dataset="tiny")
    assert va.noise_spec().get("layout") == "pixel"
    zp = noise_from_seeds(va.noise_spec(), [1])
    assert zp[0, 0].std() > 0.5  # i.i.d. per pixel
