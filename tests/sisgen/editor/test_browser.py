"""The editor in a real browser: headless Chromium driven by Selenium, against ``sisgen edit``.

Opens the page served by the real command (``sisgen edit --port 0``), paints a stroke of a
class, deletes an instance, saves; then checks the saved label map holds the painted class at
those pixels, the instance is gone, the image files decode and the manifest line lists the
edits. A screenshot of the page is kept as a test artifact (``<tmp>/editor.png``, and in
``$SISGEN_SCREENSHOT_DIR`` when set; the README's ``docs/editor.png`` is one).

Skipped when Chromium or chromedriver is missing (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them). ``$SISGEN_EDITOR_MODEL`` runs it on another
ToyCity model instead of the tiny untrained one (for a screenshot of a trained model).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
selenium = pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from sisgen.manifest import read_manifest  # noqa: E402

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium and chromedriver are not installed "
           "(apt-get install chromium chromium-driver)")

TERRAIN = 5  # toycity id
THINGS = (8, 9)  # car, person


@pytest.fixture
def start_editor(tmp_path):
    """``start_editor(model)``: run ``sisgen edit`` on a free loopback port -> (url, out)."""
    procs = []

    def start(model: Path) -> tuple[str, Path]:
        out = tmp_path / f"out{len(procs)}"
        cmd = [sys.executable, "-m", "sisgen.cli", "edit", "--model", str(model), "--source",
               "toycity", "--out", str(out), "--writers", "folder,coco", "--port", "0",
               "--bank-maps", "6"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
        url, seen, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if "open http://" in line:
                url = line.split("open ", 1)[1].split()[0]
        assert url, "sisgen edit did not start:\n" + "".join(seen)
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        return url, out

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,760", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def body_data(driver, key: str) -> str | None:
    return driver.execute_script(f"return document.body.dataset.{key} || null;")


def wait(driver, condition, what: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d),
                                                message=f"timed out waiting for {what}")


def image_is_current(driver) -> bool:
    revision = body_data(driver, "revision")
    return revision is not None and body_data(driver, "imageRevision") == revision


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: body_data(d, "ready") == "1", "the page to load")
    wait(driver, image_is_current, "the first image")


def pixel_offsets(canvas, shape: tuple[int, int]):
    """``offset(y, x)``: the CSS offset of pixel ``(y, x)``'s centre from the canvas centre."""
    width, height = canvas.size["width"], canvas.size["height"]
    zoom = width / shape[1]
    return lambda y, x: (int((x + 0.5) * zoom - width / 2), int((y + 0.5) * zoom - height / 2))


def test_paint_delete_save_in_a_browser(start_editor, browser, tmp_path, tiny_spade,
                                        far_instance):
    url, out = start_editor(os.environ.get("SISGEN_EDITOR_MODEL") or tiny_spade)
    driver = browser
    open_page(driver, url)

    # the open map, as the server holds it
    info = get_json(url + "api/info")
    h, w = info["model"]["resolution"]
    from sisgen import sources

    source_map = sources.open("toycity", size=(h, w), length=6)[0]
    row, x0, x1 = max(2, h // 10), int(w * 0.15), int(w * 0.5)
    assert (source_map.semantic[row, x0:x1 + 1] != TERRAIN).any()
    victim = far_instance(source_map, range(row - 4, row + 5))

    canvas = driver.find_element(By.ID, "overlay-canvas")
    offset = pixel_offsets(canvas, (h, w))

    # paint a stroke of terrain
    driver.find_element(By.CSS_SELECTOR, '#legend li[data-class-name="terrain"]').click()
    driver.find_element(By.ID, "tool-brush").click()
    revision = int(body_data(driver, "revision"))
    actions = ActionChains(driver).move_to_element_with_offset(canvas, *offset(row, x0))
    actions.click_and_hold()
    for x in np.linspace(x0, x1, 6)[1:]:
        actions.move_to_element_with_offset(canvas, *offset(row, int(round(x))))
    actions.release().perform()
    wait(driver, lambda d: int(body_data(d, "revision")) > revision, "the stroke")

    # select the instance and delete it
    driver.find_element(By.ID, "tool-select").click()
    ys, xs = np.nonzero(source_map.instance == victim)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    ActionChains(driver).move_to_element_with_offset(canvas, *offset(y, x)).click().perform()
    info_box = driver.find_element(By.ID, "sel-info")
    wait(driver, lambda d: f"#{victim}" in info_box.text, "the selection")
    revision = int(body_data(driver, "revision"))
    driver.find_element(By.ID, "btn-delete").click()
    wait(driver, lambda d: int(body_data(d, "revision")) > revision, "the deletion")
    wait(driver, image_is_current, "the edited image")

    # save; the sidebar lists it
    driver.find_element(By.ID, "save").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved-list li"), "the saved list")
    wait(driver, lambda d: d.execute_script(
        "const i = document.querySelector('#saved-list img'); return i && i.complete;"),
        "the saved thumbnail")
    shot = tmp_path / "editor.png"
    driver.save_screenshot(str(shot))
    if os.environ.get("SISGEN_SCREENSHOT_DIR"):
        target = Path(os.environ["SISGEN_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / "editor.png")
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe

    # what was saved
    entries = read_manifest(out / "manifest.jsonl")
    assert len(entries) == 1
    entry = entries[0]
    assert [s["op"] for s in entry["recipe"]] == ["stroke", "delete_instance"]
    assert entry["recipe"][0]["class"] == TERRAIN and entry["recipe"][1]["instance"] == victim
    assert [e["op"] for e in entry["edits"]] == ["stroke", "delete_instance"]
    assert all(e["fired"] for e in entry["edits"]) and entry["edits"][1]["pixels"] == len(ys)
    folder = out / "folder"
    label = cv2.imread(str(folder / entry["outputs"]["folder"]["label"]), cv2.IMREAD_UNCHANGED)
    assert label.shape == (h, w)
    assert (label[row, x0:x1 + 1] == TERRAIN).all()
    instances = cv2.imread(str(folder / entry["outputs"]["folder"]["instance"]),
                           cv2.IMREAD_UNCHANGED)
    assert victim not in np.unique(instances)
    assert not np.isin(label[source_map.instance == victim], THINGS).any()
    for kind in ("folder", "coco"):
        image = cv2.imread(str(out / kind / entry["outputs"][kind]["image"]), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (h, w, 3)


def test_other_tools_in_a_browser(start_editor, browser, noise_spade):
    """Polygon, rectangle, flood fill, undo / redo, drag-move, restyle, paste, zoom, reopen."""
    url, out = start_editor(noise_spade)
    driver = browser
    open_page(driver, url)
    canvas = driver.find_element(By.ID, "overlay-canvas")
    offset = pixel_offsets(canvas, (64, 128))

    def steps() -> list[dict]:
        return get_json(url + "api/state")["steps"]

    def after(action, what: str) -> None:
        revision = int(body_data(driver, "revision"))
        action()
        wait(driver, lambda d: int(body_data(d, "revision")) > revision, what)

    def click(y: int, x: int) -> None:
        ActionChains(driver).move_to_element_with_offset(canvas, *offset(y, x)).click().perform()

    def drag(a: tuple[int, int], b: tuple[int, int]) -> None:
        ActionChains(driver).move_to_element_with_offset(canvas, *offset(*a)).click_and_hold() \
            .move_to_element_with_offset(canvas, *offset(*b)).release().perform()

    button = lambda name: driver.find_element(By.ID, name)  # noqa: E731
    driver.find_element(By.CSS_SELECTOR, '#legend li[data-class-name="building"]').click()
    button("tool-polygon").click()
    for y, x in ((40, 10), (40, 30), (55, 20)):
        click(y, x)
    after(lambda: ActionChains(driver).send_keys("\n").perform(), "polygon (Enter closes it)")
    button("tool-rect").click()
    after(lambda: drag((45, 60), (50, 70)), "rectangle")
    button("tool-flood").click()
    after(lambda: click(63, 64), "flood fill")
    assert [s["op"] for s in steps()] == ["fill", "fill", "flood_fill"]
    assert steps()[1]["box"] == [45, 60, 51, 71]
    after(lambda: button("undo").click(), "undo")
    assert len(steps()) == 2
    after(lambda: button("redo").click(), "redo")
    assert len(steps()) == 3

    state = get_json(url + "api/state")
    inst = np.frombuffer(zlib_unpack(state["instance"]), "<i4").reshape(64, 128)
    car = max((i for i in np.unique(inst) if i), key=lambda i: (inst == i).sum())
    ys, xs = np.nonzero(inst == car)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    button("tool-select").click()
    click(y, x)
    wait(driver, lambda d: f"#{car}" in button("sel-info").text, "the selection")
    after(lambda: drag((y, x), (y + 2, x + 6)), "the move")
    assert steps()[-1] == {"op": "move_instance", "instance": int(car), "by": [2, 6]}
    after(lambda: button("btn-flip-h").click(), "the flip")
    after(lambda: button("restyle-selected").click(), "the restyle")
    assert steps()[-1] == {"op": "resample_noise", "instance": int(car)}
    button("tool-restyle").click()
    after(lambda: drag((5, 5), (20, 40)), "the restyled box")
    assert get_json(url + "api/state")["variant"] == 2

    button("bank-load").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#bank-grid canvas"), "the bank")
    driver.find_elements(By.CSS_SELECTOR, "#bank-grid canvas")[0].click()
    after(lambda: click(60, 100), "the paste")
    assert steps()[-1]["op"] == "paste_item" and steps()[-1]["at"] == [60, 100]

    button("zoom-in").click()
    assert button("zoom-level").text == "400%" and canvas.size["width"] == 512
    button("zoom-out").click()
    wait(driver, image_is_current, "the image")
    button("save").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved-list li"), "the save")
    saved = steps()
    after(lambda: button("next-map").click(), "the next map")
    assert steps() == []
    after(lambda: driver.find_element(By.CSS_SELECTOR, "#saved-list li").click(), "reopening")
    assert steps() == saved
    entry = read_manifest(out / "manifest.jsonl")[0]
    assert entry["recipe"] == saved and entry["editor"]["samples_per_map"] == 3
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def zlib_unpack(text: str) -> bytes:
    import base64
    import zlib

    return zlib.decompress(base64.b64decode(text))
