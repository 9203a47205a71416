"""OASIS / VA-OASIS generator specifics: label channels, 3D noise, local re-sampling."""

from __future__ import annotations

import pytest
import torch

from sisgen.models import DATASETS, build_model
from sisgen.models.oasis import OASISGenerator, _label_args
from sisgen.vocab import get_vocabulary


def _tiny(name: str, **overrides) -> OASISGenerator:
    torch.manual_seed(0)
    return build_model(name, dataset="tiny", **overrides)


@pytest.mark.parametrize(("dataset", "semantic_nc", "offset"),
                         [("cityscapes", 35, 0), ("ade20k", 151, 0), ("coco_stuff", 183, 1)])
def test_official_label_channels(dataset, semantic_nc, offset):
    args = _label_args(DATASETS[dataset], get_vocabulary(dataset))
    assert args["semantic_nc"] == semantic_nc and args["class_offset"] == offset
    assert args["dontcare_channel"] == 0


def test_semantic_map_dontcare_first():
    # COCO-Stuff style: ids shifted by one, ignore -> channel 0
    g = OASISGenerator(num_classes=3, height=32, width=32, ngf=2, z_dim=2, class_offset=1,
                       num_res_blocks=3, spade_hidden=4)
    labels = torch.tensor([[[0, 1], [2, 255]]])
    onehot = g.semantic_map(labels)  # [1,4,2,2]
    assert onehot.shape == (1, 4, 2, 2)
    assert onehot.sum(1).eq(1).all()
    assert onehot[0, :, 1, 1].tolist() == [1, 0, 0, 0]  # ignore = dontcare channel 0
    assert onehot[0, :, 0, 0].tolist() == [0, 1, 0, 0]  # id 0 -> channel 1
    # Cityscapes / ADE20K style: id 0 is the dontcare class itself, ignore joins it
    g0 = OASISGenerator(num_classes=3, height=32, width=32, ngf=2, z_dim=2, semantic_nc=4,
                        num_res_blocks=3, spade_hidden=4)
    oh0 = g0.semantic_map(labels)
    assert oh0[0, :, 1, 1].tolist() == oh0[0, :, 0, 0].tolist() == [1, 0, 0, 0]
    assert oh0[0, 3].sum() == 0  # the spare official channel stays empty
    none = OASISGenerator(num_classes=3, height=32, width=32, ngf=2, z_dim=2,
                          dontcare_channel=None, num_res_blocks=3, spade_hidden=4)
    assert none.semantic_map(labels)[0, :, 1, 1].sum() == 0


def test_noise_is_3d_and_concatenated_first():
    g = _tiny("oasis")
    assert g.noise_shape() == (8, 64, 64) and not g.uses_edges
    assert g.fc.in_channels == 8 + 6  # z_dim + (5 classes + dontcare)
    assert g.body[0].norm_0.mlp_shared[0].in_channels == 14
    labels, _, noise = g.example_inputs(batch_size=1)
    with pytest.raises(ValueError, match="noise"):
        g(labels, None, noise[:, :, :32])
    # the official sampling (one vector per image, broadcast over pixels) is a special case
    g.eval()
    flat = torch.randn(1, 8, 1, 1).expand(1, 8, 64, 64)
    with torch.no_grad():
        assert g(labels, None, flat).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("name", ["oasis", "va_oasis"])
def test_redrawn_region_changes_mostly_inside(name):
    g = _tiny(name, num_res_blocks=3)
    g.init_weights(gain=1.0)  # a livelier untrained net than the official small init
    g.eval()
    labels, _, noise = g.example_inputs(batch_size=1)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[20:44, 20:44] = True
    redrawn = noise.clone()
    redrawn[..., mask] = torch.randn(redrawn[..., mask].shape,
                                     generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        a = g(labels, None, noise)
        same = g(labels, None, noise.clone())
        b = g(labels, None, redrawn)
    assert torch.equal(a, same)
    diff = (a - b).abs().mean(1)[0]  # [H,W]
    assert diff[mask].mean() > 3 * diff[~mask].mean() > 0


def test_va_oasis_structure():
    g = _tiny("va_oasis")
    # no 3D noise concatenated (official --no_3dnoise); noise enters the norms only
    assert g.z_dim == 0 and g.fc.in_channels == 6 and g.noise_shape() == (8, 64, 64)
    assert g.fc.padding_mode == "reflect" and g.body[0].conv_0.padding == (0, 0)
    for i, block in enumerate(g.body):  # learnable position code at each block's size
        side = 4 * 2**i
        assert block.norm_0.gamma_pos_learn.shape == (2, side, side)
        assert block.norm_0.gamma_noise_gamma.shape[0] == 6  # one row per label channel
    labels, _, noise = g.example_inputs(batch_size=1)
    g.eval()
    with torch.no_grad():
        a = g(labels, None, noise)
        b = g(labels, None, torch.randn_like(noise))
    assert not torch.allclose(a, b)  # semantic noise varies the image
    with pytest.raises(ValueError, match="reflect"):
        _tiny("va_oasis", num_res_blocks=6)  # 2x2 first block cannot be reflect-padded


def test_official_init_overrides_zero_position_convs():
    g = _tiny("va_oasis")
    conv = g.body[0].norm_0.conv_pos_gamma
    assert conv.weight.abs().sum() > 0 and conv.bias.abs().sum() == 0
    sn_conv = g.body[0].conv_0  # spectral norm: the normalized weight has norm ~1
    sigma = torch.linalg.matrix_norm(sn_conv.weight.detach().flatten(1), 2)
    assert 0.9 < sigma < 1.1


def test_invalid_arguments():
    with pytest.raises(ValueError, match="multiples"):
        OASISGenerator(num_classes=3, height=60, width=64)
    with pytest.raises(ValueError, match="do not fit"):
        OASISGenerator(num_classes=3, semantic_nc=3, class_offset=1)
    with pytest.raises(ValueError, match="cond"):
        OASISGenerator(num_classes=3, vasis={"noise": None})
