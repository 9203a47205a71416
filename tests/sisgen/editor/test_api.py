"""Every endpoint of the editor app, through FastAPI's TestClient, bad requests included."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from sisgen.editor.app import STATIC, create_app  # noqa: E402
from sisgen.manifest import read_manifest  # noqa: E402

# toycity ids
SKY, ROAD, SIDEWALK, BUILDING, VEG, TERRAIN, CAR, PERSON = 0, 1, 2, 3, 4, 5, 8, 9


def unpack(text: str, dtype, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).reshape(shape)


def scene(state: dict) -> tuple[np.ndarray, np.ndarray]:
    shape = state["shape"]
    return unpack(state["semantic"], np.uint8, shape), unpack(state["instance"], "<i4", shape)


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/")
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image[..., ::-1]


# --------------------------------------------------------------------------- page, info
def test_page_and_static_files_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "label-canvas" in page.text
    for name in ("editor.js", "editor.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 1000
    assert client.get("/static/../app.py").status_code == 404
    for path in STATIC.iterdir():  # nothing is fetched from elsewhere at run time
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_info(client):
    info = client.get("/api/info").json()
    assert info["model"]["name"] == "spade" and info["model"]["resolution"] == [64, 128]
    assert info["model"]["restyle"] is False and info["model"]["photo_editing"] is False
    classes = {c["name"]: c for c in info["vocabulary"]["classes"]}
    assert classes["car"]["thing"] and classes["road"]["id"] == ROAD
    assert len(classes["sky"]["color"]) == 3 and info["vocabulary"]["ignore"] == 255
    assert info["source"] == {"kind": "toycity", "count": 6}
    assert info["writers"] == ["folder", "coco"]


def test_state_is_the_open_map(client, session, toycity):
    state = client.get("/api/state").json()
    sem, inst = scene(state)
    source_map = toycity()[0]
    np.testing.assert_array_equal(sem, source_map.semantic)
    np.testing.assert_array_equal(inst, source_map.instance)
    assert state["id"] == source_map.id and state["steps"] == [] and not state["can_undo"]
    assert state["restyled"] is None and state["variant"] == 0 and state["seed"] == 0


# --------------------------------------------------------------------------- maps
def test_maps_and_open(client, toycity):
    page = client.get("/api/maps", params={"offset": 2, "limit": 3}).json()
    assert page["count"] == 6 and [m["index"] for m in page["maps"]] == [2, 3, 4]
    assert client.get("/api/maps", params={"limit": 0}).status_code == 422
    opened = client.post("/api/open", json={"index": 3}).json()
    assert opened["index"] == 3 and opened["id"] == page["maps"][1]["id"]
    np.testing.assert_array_equal(scene(opened)[0], toycity()[3].semantic)
    by_id = client.post("/api/open", json={"id": page["maps"][0]["id"]}).json()
    assert by_id["index"] == 2
    for body, status in (({"index": 6}, 404), ({"id": "nope"}, 404), ({}, 422),
                         ({"index": 1, "id": "x"}, 422), ({"index": -1}, 422)):
        r = client.post("/api/open", json=body)
        assert r.status_code == status, (body, r.text)
        assert "detail" in r.json()


def test_blank_canvas(client):
    state = client.post("/api/blank", json={"class": "road"}).json()
    sem, inst = scene(state)
    assert sem.shape == (64, 128) and (sem == ROAD).all() and not inst.any()
    assert state["steps"] == [{"op": "canvas", "class": "road", "size": [64, 128]}]
    assert client.post("/api/blank", json={"class": "ignore"}).status_code == 422
    r = client.post("/api/blank", json={"class": "unicorn"})
    assert r.status_code == 422 and "unicorn" in r.json()["detail"]
    assert client.get("/api/state").json() == state  # a refused blank changes nothing
    assert client.post("/api/undo").json()["state"]["steps"] == []  # back to the map


# --------------------------------------------------------------------------- edits
def test_paint_edits_exact_pixels(client):
    client.post("/api/blank", json={"class": "road"})
    r = client.post("/api/edit", json={"op": "stroke", "class": "terrain",
                                       "points": [[10, 20], [10, 60]], "radius": 0.5})
    assert r.status_code == 200
    assert r.json()["record"]["pixels"] == 41 and r.json()["record"]["params"]["class"] == TERRAIN
    client.post("/api/edit", json={"op": "fill", "class": "building", "box": [20, 0, 30, 10]})
    client.post("/api/edit", json={"op": "fill", "class": 0,
                                   "polygon": [[40, 40], [40, 50], [50, 50], [50, 40]]})
    r = client.post("/api/edit", json={"op": "stroke", "class": "car", "points": [[60, 100]],
                                       "radius": 2})
    assert r.json()["record"]["instance"] == 1
    state = client.post("/api/edit", json={"op": "flood_fill", "class": "sidewalk",
                                           "at": [0, 0]}).json()["state"]
    sem, inst = scene(state)
    expected = np.full((64, 128), SIDEWALK, np.uint8)
    expected[10, 20:61] = TERRAIN
    expected[20:30, 0:10] = BUILDING
    expected[40:51, 40:51] = SKY
    yy, xx = np.mgrid[:64, :128]
    car = (yy - 60) ** 2 + (xx - 100) ** 2 <= 4
    expected[car] = CAR
    np.testing.assert_array_equal(sem, expected)
    np.testing.assert_array_equal(inst, np.where(car, 1, 0))
    assert [s["op"] for s in state["steps"]] == ["canvas", "stroke", "fill", "fill", "stroke",
                                                 "flood_fill"]
    assert state["can_undo"] and state["revision"] > 0


def test_instance_edits(client, session, far_instance):
    lm = session.current()
    car = far_instance(lm, range(0, 1))
    mask = lm.instance == car
    r = client.post("/api/edit", json={"op": "flip_instance", "instance": car})
    assert r.status_code == 200 and r.json()["record"]["pixels"] == mask.sum()
    client.post("/api/edit", json={"op": "scale_instance", "instance": car, "factor": 1.25})
    client.post("/api/edit", json={"op": "move_instance", "instance": car, "by": [-2, 3]})
    client.post("/api/edit", json={"op": "relabel_instance", "instance": car, "class": "person"})
    sem, inst = scene(client.get("/api/state").json())
    assert (sem[inst == car] == PERSON).all()
    state = client.post("/api/edit", json={"op": "delete_instance", "instance": car}).json()
    sem, inst = scene(state["state"])
    assert not (inst == car).any()
    stuff = np.isin(sem[mask], [SKY, ROAD, SIDEWALK, BUILDING, VEG, TERRAIN])
    assert stuff.mean() > 0.5  # (the car grew and moved: its old pixels may hold others)


def test_paste_from_the_bank(client, session):
    page = client.get("/api/bank", params={"class": "car", "limit": 2}).json()
    assert page["count"] >= 1 and all(item["name"] == "car" for item in page["items"])
    item = page["items"][0]
    mask = unpack(item["mask"], np.uint8, item["size"])
    assert mask.sum() == item["pixels"]
    r = client.post("/api/edit", json={"op": "paste_item", "item": item["index"],
                                       "at": [62, 64]})
    assert r.status_code == 200 and r.json()["record"]["class"] == CAR
    step = r.json()["state"]["steps"][-1]
    assert step["bank"].startswith("../banks/bank-")  # the bank is a file of the output
    assert (session.out_dir / "banks" / step["bank"].split("/")[-1]).is_file()
    assert client.get("/api/bank", params={"class": "unicorn"}).status_code == 422
    assert client.post("/api/edit", json={"op": "paste_item", "item": 10**6,
                                          "at": [0, 0]}).status_code == 422


@pytest.mark.parametrize("body, status, word", [
    ({"op": "stroke", "class": "unicorn", "points": [[1, 1]]}, 422, "unicorn"),
    ({"op": "stroke", "class": 77, "points": [[1, 1]]}, 422, "77"),
    ({"op": "stroke", "class": "car", "points": [[64, 1]]}, 422, "outside"),
    ({"op": "stroke", "class": "car", "points": [[1, 128]]}, 422, "outside"),
    ({"op": "stroke", "class": "car", "points": [[-1, 1]]}, 422, "greater than or equal"),
    ({"op": "stroke", "class": "car", "points": [[1, 1, 1]]}, 422, "at most 2"),
    ({"op": "stroke", "class": "car", "points": []}, 422, "at least 1"),
    ({"op": "stroke", "class": "car", "points": [[0, 0]] * 10_001}, 422, "at most 10000"),
    ({"op": "stroke", "class": "car", "points": [[1, 1]], "radius": 0}, 422, "0.5"),
    ({"op": "stroke", "class": "car", "points": [[1, 1]], "colour": 1}, 422, "xtra"),
    ({"op": "fill", "class": "car"}, 422, "polygon or box"),
    ({"op": "fill", "class": "car", "box": [0, 0, 65, 5]}, 422, "outside"),
    ({"op": "flood_fill", "class": "car", "at": [0, 0], "connectivity": 6}, 422, "4"),
    ({"op": "move_instance", "instance": 123456, "by": [1, 1]}, 404, "no instance"),
    ({"op": "delete_instance", "instance": 0}, 422, "greater than or equal"),
    ({"op": "scale_instance", "instance": 8000, "factor": 100}, 422, "20"),
    ({"op": "remove_instances", "classes": ["car"]}, 422, "op"),
    ({"op": "explode"}, 422, "op"),
    ({"class": "car"}, 422, "op"),
    ([1, 2, 3], 422, "dictionary"),
])
def test_bad_edits_are_4xx_and_change_nothing(client, body, status, word):
    before = client.get("/api/state").json()
    r = client.post("/api/edit", json=body)
    assert r.status_code == status, r.text
    assert word in json.dumps(r.json()["detail"])
    assert client.get("/api/state").json() == before


def test_malformed_and_oversized_bodies(client):
    as_json = {"content-type": "application/json"}
    r = client.post("/api/edit", content=b"{not json", headers=as_json)
    assert r.status_code == 422
    r = client.post("/api/edit", content=b"x" * (2 << 20), headers=as_json)
    assert r.status_code == 413 and "bytes" in r.json()["detail"]

    def chunks():  # no content-length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    r = client.post("/api/edit", content=chunks(), headers=as_json)
    assert r.status_code == 413
    assert client.get("/api/info").status_code == 200  # still serving


def test_loopback_host_header_only(session):
    from fastapi.testclient import TestClient

    app = create_app(session)
    assert TestClient(app, base_url="http://evil.example").get("/api/info").status_code == 400
    assert TestClient(app, base_url="http://localhost:8765").get("/api/info").status_code == 200
    anyhost = create_app(session, allowed_hosts=None)
    assert TestClient(anyhost, base_url="http://evil.example").get("/api/info").status_code == 200


def test_undo_redo(client):
    s0 = client.get("/api/state").json()
    s1 = client.post("/api/edit", json={"op": "stroke", "class": "sky",
                                        "points": [[30, 30]], "radius": 3}).json()["state"]
    undone = client.post("/api/undo").json()
    assert undone["changed"] and undone["state"]["semantic"] == s0["semantic"]
    assert undone["state"]["can_redo"] and not undone["state"]["can_undo"]
    redone = client.post("/api/redo").json()
    assert redone["changed"] and redone["state"]["semantic"] == s1["semantic"]
    assert not client.post("/api/redo").json()["changed"]
    client.post("/api/undo")
    client.post("/api/edit", json={"op": "stroke", "class": "road", "points": [[1, 1]]})
    assert not client.get("/api/state").json()["can_redo"]  # a new edit clears redo
    client.post("/api/undo")
    assert not client.post("/api/undo").json()["changed"]


def test_select(client, session, far_instance):
    lm = session.current()
    car = far_instance(lm, range(0, 1))
    ys, xs = np.nonzero(lm.instance == car)
    hit = client.post("/api/select", json={"y": int(ys[0]), "x": int(xs[0])}).json()
    assert hit["instance"] == car and hit["pixels"] == len(ys)
    assert hit["box"] == [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]
    assert hit["name"] == session.vocab[int(lm.semantic[ys[0], xs[0]])].name
    stuff = client.post("/api/select", json={"y": 0, "x": 0}).json()
    assert stuff["instance"] is None and stuff["class"] == lm.semantic[0, 0]
    assert stuff["name"] == session.vocab[int(lm.semantic[0, 0])].name
    assert client.post("/api/select", json={"y": 64, "x": 0}).status_code == 422
    assert client.post("/api/select", json={"y": "a", "x": 0}).status_code == 422


# --------------------------------------------------------------------------- style, image
def test_image_and_seed(client):
    r = client.get("/api/image")
    image = png(r)
    assert image.shape == (64, 128, 3) and r.headers["x-revision"] == str(
        client.get("/api/state").json()["revision"])
    np.testing.assert_array_equal(png(client.get("/api/image")), image)  # cached / same
    state = client.post("/api/seed", json={"seed": 42}).json()
    assert state["seed"] == 42
    new = client.post("/api/seed", json={}).json()
    assert new["seed"] != 42 and new["revision"] > state["revision"]
    for bad in ({"seed": -1}, {"seed": 2**63}, {"seed": "x"}, {"seed": 1.5}):
        assert client.post("/api/seed", json=bad).status_code == 422


def test_restyle_needs_local_noise(client):
    r = client.post("/api/restyle", json={"box": [0, 0, 10, 10]})
    assert r.status_code == 422 and "spatial" in r.json()["detail"]


def test_restyle_with_spatial_noise(make_session, noise_spade, far_instance):
    from fastapi.testclient import TestClient

    session = make_session(noise_spade)
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    before = png(client.get("/api/image"))
    state = client.post("/api/restyle", json={"box": [10, 20, 30, 60]}).json()["state"]
    restyled = unpack(state["restyled"], np.uint8, state["shape"])
    expected = np.zeros((64, 128), np.uint8)
    expected[10:30, 20:60] = 1
    np.testing.assert_array_equal(restyled, expected)  # exactly the box
    assert state["variant"] == 1
    after = png(client.get("/api/image"))
    assert not np.array_equal(before, after)
    car = far_instance(session.current(), range(0, 1))
    state = client.post("/api/restyle", json={"instance": car}).json()["state"]
    restyled = unpack(state["restyled"], np.uint8, state["shape"])
    np.testing.assert_array_equal(restyled.astype(bool),
                                  expected.astype(bool) | (session.current().instance == car))
    assert state["variant"] == 2 and state["steps"][-1] == {"op": "resample_noise",
                                                            "instance": car}
    for body, status in (({}, 422), ({"instance": car, "box": [0, 0, 1, 1]}, 422),
                         ({"instance": 99999}, 404), ({"box": [0, 0, 65, 1]}, 422),
                         ({"box": [5, 5, 5, 6]}, 422)):
        assert client.post("/api/restyle", json=body).status_code == status, body
    assert client.post("/api/undo").json()["state"]["variant"] == 1


# --------------------------------------------------------------------------- saving
def test_save_saved_files_and_reopen(client, session):
    client.post("/api/seed", json={"seed": 7})
    client.post("/api/edit", json={"op": "stroke", "class": "terrain",
                                   "points": [[5, 5], [5, 40]], "radius": 1})
    entry = client.post("/api/save", json={}).json()
    name = entry["sample"]
    assert name == f"{session.base.id}_edit1" and entry["status"] == "ok"
    assert entry["recipe"] == [{"op": "stroke", "class": "terrain", "points": [[5, 5], [5, 40]],
                                "radius": 1}]
    assert entry["edits"][0]["op"] == "stroke" and entry["edits"][0]["params"]["class"] == TERRAIN
    assert entry["editor"]["run_seed"] == 7 and entry["source_index"] == 0
    out = session.out_dir
    label = cv2.imread(str(out / "folder" / entry["outputs"]["folder"]["label"]),
                       cv2.IMREAD_UNCHANGED)
    assert (label[5, 5:41] == TERRAIN).all()
    assert (out / entry["editor"]["recipe_file"]).is_file()
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines == [entry]
    assert client.post("/api/save", json={}).json()["sample"] == f"{session.base.id}_edit2"
    assert client.post("/api/save", json={"name": "mine"}).status_code == 200
    assert client.post("/api/save", json={"name": "mine"}).status_code == 409
    for bad in ("../evil", "a/b", ".hidden", "", "x" * 121):
        assert client.post("/api/save", json={"name": bad}).status_code == 422, bad
    saved = client.get("/api/saved").json()["samples"]
    assert [s["name"] for s in saved] == [name, f"{session.base.id}_edit2", "mine"]
    assert saved[0]["edits"] == 1 and saved[0]["image"].startswith("folder/images/")
    served = png(client.get(f"/api/files/{saved[0]['image']}"))
    assert served.shape == (64, 128, 3)
    # reopen: map, steps and seed come back
    client.post("/api/open", json={"index": 2})
    state = client.post("/api/open_saved", json={"name": name}).json()
    assert state["index"] == 0 and state["seed"] == 7 and state["steps"] == entry["recipe"]
    assert client.post("/api/open_saved", json={"name": "nope"}).status_code == 404
    assert client.post("/api/open_saved", json={"name": "../x"}).status_code == 422


def test_files_stay_inside_the_output_folder(client, session, tmp_path):
    client.post("/api/save", json={"name": "one"})
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    (session.out_dir / "link.png").symlink_to(secret)
    for path in ("../secret.png", "%2e%2e/secret.png", "folder/../../secret.png",
                 str(secret), "link.png", "folder", "nope.png", "manifest.jsonl/x"):
        r = client.get(f"/api/files/{path}")
        assert r.status_code == 404, path
        assert b"PNG secret" not in r.content
    assert client.get("/api/files/folder/vocabulary.json").status_code == 200
    (session.out_dir / "notes.txt").write_text("x")
    assert client.get("/api/files/notes.txt").status_code == 404  # not a served kind


def test_saved_sample_is_a_generate_sample(client, session, tiny_spade, toycity, tmp_path):
    """``sisgen generate`` with the saved recipe and seed writes the very same sample."""
    import sisgen
    from sisgen.generate import generate

    client.post("/api/open", json={"index": 2})
    client.post("/api/seed", json={"seed": 5})
    client.post("/api/edit", json={"op": "fill", "class": "vegetation", "box": [30, 10, 50, 40]})
    lm = session.current()
    car = int(np.unique(lm.instance[lm.instance > 0])[0])
    client.post("/api/edit", json={"op": "delete_instance", "instance": car})
    entry = client.post("/api/save", json={}).json()
    report = generate(sisgen.load(tiny_spade), toycity(), tmp_path / "run", writers=("folder",),
                      recipe=session.out_dir / entry["editor"]["recipe_file"], seed=5,
                      limit=3, batch_size=1, progress=False)
    assert report.written == 3
    run = tmp_path / "run"
    stem = entry["editor"]["run_sample"]
    line = [e for e in read_manifest(run / "manifest.jsonl") if e.get("sample") == stem][0]
    for role in ("label", "instance", "image"):
        a = cv2.imread(str(run / "folder" / line["outputs"]["folder"][role]), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(session.out_dir / "folder" / entry["outputs"]["folder"][role]),
                       cv2.IMREAD_UNCHANGED)
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)
    assert line["edits"] == entry["edits"] and line["seed"] == entry["seed"]


# --------------------------------------------------------------------------- photo editing
def test_photo_editing_resynthesizes_only_the_hole(make_session, tiny_sesame, toycity):
    from fastapi.testclient import TestClient

    session = make_session(tiny_sesame)
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    assert client.get("/api/info").json()["model"]["photo_editing"] is True
    photo = toycity().photo(0)
    untouched = png(client.get("/api/image"))
    np.testing.assert_array_equal(untouched, photo)  # no edit: the photo itself
    client.post("/api/edit", json={"op": "fill", "class": "building", "box": [4, 4, 12, 20]})
    edited = png(client.get("/api/image"))
    changed = np.any(edited != photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= 4 - 2 and ys.max() < 12 + 2  # the box, grown by 2
    assert xs.min() >= 4 - 2 and xs.max() < 20 + 2


def test_server_keeps_running_after_bad_requests(client):
    for body in ({"op": "stroke"}, {"op": "fill", "class": "car", "box": [0]}, None, "text"):
        assert client.post("/api/edit", json=body).status_code == 422
    assert client.post("/api/edit", json={"op": "stroke", "class": "road",
                                          "points": [[1, 1]]}).status_code == 200
    assert png(client.get("/api/image")).shape == (64, 128, 3)


def test_static_files_are_package_data():
    assert {p.name for p in Path(STATIC).iterdir()} >= {"index.html", "editor.js", "editor.css"}
