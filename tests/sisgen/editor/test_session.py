"""The editing session: steps are a recipe, undo history, seeds and the serving helpers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

from sisgen import SisgenInputError  # noqa: E402
from sisgen.editor.server import is_loopback  # noqa: E402
from sisgen.editor.session import EDITOR_OPS, ConflictError, NotFoundError  # noqa: E402
from sisgen.edits import Recipe  # noqa: E402


def _steps(lm, car: int) -> list[dict]:
    return [
        {"op": "stroke", "class": "terrain", "points": [[3, 3], [3, 90], [20, 100]], "radius": 2},
        {"op": "fill", "class": "building", "polygon": [[0, 0], [0, 30], [15, 10]]},
        {"op": "flood_fill", "class": "sky", "at": [0, 127]},
        {"op": "move_instance", "instance": car, "by": [2, -5]},
        {"op": "flip_instance", "instance": car},
        {"op": "scale_instance", "instance": car, "factor": 0.8},
        {"op": "fill", "class": "car", "box": [50, 60, 58, 80]},
        {"op": "relabel_instance", "instance": car, "class": "person"},
        {"op": "paste_item", "item": 0, "at": [60, 30]},
        {"op": "delete_instance", "instance": car},
    ]


def test_current_map_is_the_recipe_replayed(make_session, tiny_spade, far_instance,
                                            assert_same_maps):
    session = make_session(tiny_spade, history=2)  # most states dropped: replayed on demand
    car = far_instance(session.current(), range(0, 1))
    for step in _steps(session.current(), car):
        session.apply(step)
    replayed = session.recipe()(session.base, seed=123, vocab=session.vocab)
    assert_same_maps(session.current(), replayed)
    assert sum(s is not None for s in session._states) <= 3
    recipe_file = session.out_dir / "recipes" / "all.yaml"  # where saved recipes live
    steps = session.steps
    for k in range(len(steps), 0, -1):  # undo through dropped states
        assert session.undo()
        partial = Recipe.from_list(steps[:k - 1], source=recipe_file)
        assert_same_maps(session.current(), partial(session.base, seed=0, vocab=session.vocab))
    assert not session.undo()
    while session.redo():
        pass
    assert_same_maps(session.current(), replayed)


def test_only_deterministic_editor_ops(session):
    for step in ({"op": "remove_instances", "classes": ["car"]}, {"op": "hflip"},
                 {"op": "stroke", "class": "sky", "points": [[1, 1]], "p": 0.5}):
        with pytest.raises(SisgenInputError, match="editor takes"):
            session.apply(step)
    assert {"stroke", "fill", "flood_fill", "canvas", "paste_item"} <= EDITOR_OPS
    assert not session.can_undo


def test_seeds_and_saved_names(session):
    assert session.set_seed(11) == 11
    assert 0 <= session.set_seed() < 2**31
    for bad in (-1, 2**63, "3", 1.0, True):
        with pytest.raises(SisgenInputError, match="seed"):
            session.set_seed(bad)
    session.save("scene")
    with pytest.raises(ConflictError):
        session.save("scene")
    with pytest.raises(NotFoundError):
        session.open_saved("other")
    with pytest.raises(NotFoundError):
        session.find("nope")
    with pytest.raises(NotFoundError):
        session.open(99)


def test_open_keeps_the_session_when_a_step_does_not_apply(session):
    revision = session.revision
    bad = list(Recipe([{"op": "stroke", "class": "sky", "points": [[500, 1]]}]))
    with pytest.raises(SisgenInputError, match="outside"):
        session.open(2, steps=bad)
    assert session.index == 0 and session.revision == revision


def test_render_failure_is_an_input_error(make_session, tiny_sesame, toycity, monkeypatch):
    session = make_session(tiny_sesame)
    monkeypatch.setattr(type(session.source), "photo", lambda self, i: None)
    session.open(1)
    with pytest.raises(SisgenInputError, match="photo"):
        session.render()


def test_reproduce_command(make_session, tiny_spade):
    session = make_session(tiny_spade, reproduce={"model": "runs/m/model.onnx",
                                                  "split": "val", "source_options": ["seed=3"]})
    session.open(2)
    entry = session.save()
    command = entry["editor"]["command"]
    assert command.startswith("sisgen generate --model runs/m/model.onnx --source toycity "
                              "--split val --source-option seed=3 --recipe ")
    assert command.endswith("--seed 0 --samples-per-map 1 --limit 3 --out OUT")


def test_loopback_names():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.org"))


def test_unknown_writer_fails_early(make_session, tiny_spade):
    with pytest.raises(SisgenInputError, match="writer"):
        make_session(tiny_spade, writers=("folder", "jpegs"))
    with pytest.raises(SisgenInputError, match="option"):
        make_session(tiny_spade, writer_options={"folder": {"colour": True}})


@pytest.fixture
def assert_same_maps():
    def check(a, b):
        np.testing.assert_array_equal(a.semantic, b.semantic)
        np.testing.assert_array_equal(a.instance, b.instance)
    return check


def test_cli_edit_reports_bad_settings(tiny_spade, tmp_path, capsys):
    from sisgen.cli import main

    code = main(["edit", "--model", str(tiny_spade), "--source", "toycity", "--out",
                 str(tmp_path / "out"), "--writers", "folder,nope"])
    assert code == 2 and "unknown writer" in capsys.readouterr().err


@pytest.mark.parametrize("host, warned, hosts", [("127.0.0.1", False, "loopback"),
                                                 ("0.0.0.0", True, None)])
def test_serve_binds_loopback_unless_asked(session, monkeypatch, capsys, host, warned, hosts):
    import uvicorn

    from sisgen.editor import server

    seen = {}
    real = server.create_app

    def recording_create_app(s, allowed_hosts=None):
        seen["hosts"] = allowed_hosts
        return real(s, allowed_hosts=allowed_hosts)

    def no_serving(self, sockets=None):
        seen["port"] = sockets[0].getsockname()[1]
        sockets[0].close()

    monkeypatch.setattr(server, "create_app", recording_create_app)
    monkeypatch.setattr(uvicorn.Server, "run", no_serving)
    server.serve(session, host=host, port=0)
    out, err = capsys.readouterr()
    assert f"open http://127.0.0.1:{seen['port']}/" in out
    assert ("WARNING" in err) == warned and (not warned or "0.0.0.0" in err)
    assert (seen["hosts"] is None) == (hosts is None)
