"""Tiny models, a ToyCity source and editor sessions for the editor tests.

The models are untrained (random weights, a few channels): what the tests check -- pixels
of the label maps, files, manifest lines, the photo outside the hole -- does not depend on
training, and building one takes about a second. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sisgen
from sisgen.models import build_model

SIZE = (64, 128)


def build_tiny(name: str, out: Path, **overrides) -> Path:
    """Build and save a tiny untrained model for the toycity vocabulary at 64x128."""
    model = build_model(name, dataset="toycity", height=SIZE[0], width=SIZE[1], **overrides)
    model.save(out)
    return out


@pytest.fixture(scope="session")
def tiny_spade(tmp_path_factory) -> Path:
    """A tiny SPADE (no noise input): the quickstart's architecture, ngf 8."""
    return build_tiny("spade", tmp_path_factory.mktemp("spade"), ngf=8)


@pytest.fixture(scope="session")
def noise_spade(tmp_path_factory) -> Path:
    """A tiny SPADE with OASIS-style spatial noise (restyling works)."""
    return build_tiny("spade", tmp_path_factory.mktemp("spade_noise"), ngf=8, z_dim=0,
                      spatial_noise_dim=4)


@pytest.fixture(scope="session")
def tiny_sesame(tmp_path_factory) -> Path:
    """A tiny SESAME (photo editing: a photo and a hole in, only the hole synthesized)."""
    return build_tiny("sesame", tmp_path_factory.mktemp("sesame"), ngf=4, spade_hidden=8)


def _toycity(length: int = 6):
    return sisgen.sources.open("toycity", size=SIZE, length=length)


@pytest.fixture
def toycity():
    """``toycity(length=6)``: the ToyCity source the sessions browse (64x128)."""
    return _toycity


@pytest.fixture
def make_session(tmp_path):
    """``make_session(model_dir, **kwargs)``: an editor session on ToyCity into ``tmp_path``."""
    from sisgen.editor.session import EditorSession

    def make(model_dir: Path, **kwargs):
        kwargs.setdefault("writers", ("folder", "coco"))
        kwargs.setdefault("bank_maps", 6)
        return EditorSession(sisgen.load(model_dir), _toycity(), tmp_path / "out", **kwargs)

    return make


@pytest.fixture
def session(make_session, tiny_spade):
    return make_session(tiny_spade)


@pytest.fixture
def client(session):
    from fastapi.testclient import TestClient

    from sisgen.editor.app import create_app

    with TestClient(create_app(session), base_url="http://127.0.0.1") as c:
        yield c


def _far_instance(labelmap, rows: range) -> int:
    """The largest instance of ``labelmap`` that has no pixel in ``rows``."""
    best, best_n = 0, 0
    for i in np.unique(labelmap.instance):
        mask = labelmap.instance == i
        if i == 0 or mask[rows.start:rows.stop].any():
            continue
        if mask.sum() > best_n:
            best, best_n = int(i), int(mask.sum())
    assert best, "the ToyCity map has no instance outside the rows"
    return best


@pytest.fixture
def far_instance():
    """``far_instance(labelmap, rows)``: its largest instance with no pixel in ``rows``."""
    return _far_instance
