"""`glyphfuse serve` end to end: the real command on a micro checkpoint (grey, and RGB with scene
controls; with a micro inpainting model for the Edit panel), the real page in headless Debian
Chromium (selenium), real OCR (tesseract; RapidOCR for the edited colour box).

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/setup.sh installs them with apt-get);
without them the test fails and says so. Selenium is given both paths, so selenium-manager never
runs (it would try to download a browser).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.controls import SCENE_KINDS
from glyphfuse.sampling.generation import packaged_painter_dir
from helpers import micro_config, micro_scene_config, random_model

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900")
START_S, DRAW_S = 180, 120  # a busy 2-core box: model load, Chromium start, the first sampling


def start_server(checkpoint: Path, *options: str) -> tuple[subprocess.Popen, str, list[str]]:
    """``glyphfuse serve -c CHECKPOINT --port 0 [OPTIONS]`` in a subprocess; (process, URL, its output lines)."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "glyphfuse", "serve", "-c", str(checkpoint), "--port", "0", "--device", "cpu", *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    found: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "http://" in line:
                found.put(line.split("http://", 1)[1].split()[0])
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        address = found.get(timeout=START_S)
    except queue.Empty:
        address = None
    if address is None:
        process.kill()
        pytest.fail("glyphfuse serve did not print its URL:\n" + "\n".join(lines))
    return process, f"http://{address}", lines


def chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@contextlib.contextmanager
def served_page(config, tmp_path: Path, monkeypatch, edit_base=None):
    """``glyphfuse serve`` on a random micro checkpoint of ``config`` and Chromium on its page;
    yields (driver, the server's output lines); Ctrl-C at the end, which must stop it cleanly.
    edit_base: a colour config whose inpainting model (random) is the ``--edit-checkpoint``."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"the browser test needs Debian's Chromium: {', '.join(missing)} missing; "
                    "install it with: apt-get install -y chromium chromium-driver (scripts/setup.sh does)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager, should anything call it: no network
    save_checkpoint(tmp_path / "ckpt", random_model(config), config)
    options = []
    if edit_base is not None:
        from glyphfuse.training.inpaint import inpaint_warm_start

        save_checkpoint(tmp_path / "edit", *inpaint_warm_start(random_model(edit_base, 3), edit_base))
        options = ["--edit-checkpoint", str(tmp_path / "edit")]
    process, url, lines = start_server(tmp_path / "ckpt", *options)
    driver = None
    try:
        driver = chromium(tmp_path / "chromium-profile")
        driver.get(url)
        yield driver, lines
    finally:
        if driver is not None:
            driver.quit()
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = "killed"
        time.sleep(0.1)  # the reader thread takes the last lines
    output = "\n".join(lines)
    assert code == 0, output
    assert "glyphfuse serve: stopped" in output and "Traceback" not in output


def test_the_page_draws_a_prompt_typed_and_entered(tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with served_page(micro_config("micro16"), tmp_path, monkeypatch) as (driver, lines):
        wait = WebDriverWait(driver, DRAW_S)
        wait.until(lambda d: d.find_element(By.ID, "model-name").text.startswith("micro16"))  # /api/model answered
        assert not driver.find_element(By.ID, "scene").is_displayed()  # a grey model: no scene controls
        if packaged_painter_dir() is None:  # no --edit-checkpoint and none packaged: editing off
            assert not driver.find_element(By.ID, "edit").is_displayed()
        prompt = driver.find_element(By.ID, "prompt")
        prompt.send_keys("ab")
        prompt.send_keys(Keys.SHIFT, Keys.ENTER)  # a line break, not a submit
        prompt.send_keys("cd")
        assert prompt.get_property("value") == "ab\ncd"
        assert not driver.find_element(By.ID, "result-image").is_displayed()
        prompt.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "result-image").is_displayed())
        image = driver.find_element(By.ID, "result-image")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", image) == 16
        assert image.size["width"] >= 128  # shown large, pixelated
        assert driver.find_element(By.ID, "ocr-text").is_displayed()
        assert driver.find_element(By.ID, "ocr-text").text != ""
        assert driver.find_element(By.ID, "result-prompt").text == "ab\ncd"
        assert driver.find_element(By.ID, "seed-used").text.split()[0].isdigit()
        assert not driver.find_element(By.ID, "scene-used").is_displayed()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history li")) == 1
        assert driver.find_element(By.ID, "error").is_displayed() is False
    assert any(line.startswith("sampled 'ab\\ncd'") for line in lines), "\n".join(lines)


def test_a_colour_model_shows_its_scene_controls_and_sends_them(tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    config = micro_config("micro16rgb")
    config = dataclasses.replace(config, channels=3, scene_kinds=SCENE_KINDS,
                                 unet=dataclasses.replace(config.unet, in_channels=3, out_channels=3))
    with served_page(config, tmp_path, monkeypatch) as (driver, lines):
        wait = WebDriverWait(driver, DRAW_S)
        wait.until(lambda d: d.find_element(By.ID, "scene").is_displayed())  # /api/model listed scene_kinds
        style = Select(driver.find_element(By.ID, "style"))
        assert [option.get_attribute("value") for option in style.options] == ["", *SCENE_KINDS]  # "" = any
        assert style.first_selected_option.text.startswith("any")
        for name in ("text-color", "background-color"):
            assert driver.find_element(By.ID, name).get_attribute("type") == "color"
            assert driver.find_element(By.ID, f"{name}-any").is_selected()  # not given until picked
        style.select_by_value("sign")
        # a colour picked (the native dialog cannot be driven; set the value and fire its input event)
        driver.execute_script("const c = document.getElementById('text-color'); c.value = '#ff0000';"
                              "c.dispatchEvent(new Event('input', {bubbles: true}));")
        assert not driver.find_element(By.ID, "text-color-any").is_selected()
        driver.find_element(By.ID, "prompt").send_keys("ab")
        driver.find_element(By.ID, "seed").send_keys("5")
        driver.find_element(By.ID, "draw").click()
        wait.until(lambda d: d.find_element(By.ID, "result-image").is_displayed() or d.find_element(By.ID, "error").is_displayed())
        assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
        assert driver.execute_script("return arguments[0].naturalWidth", driver.find_element(By.ID, "result-image")) == 16
        # the answer's settings, as the page shows them
        assert driver.find_element(By.ID, "scene-used").text == "style sign, text #ff0000, background any"
    assert any(line.startswith("sampled 'ab' seed 5 x1 style sign text color #ff0000 in") for line in lines), "\n".join(lines)


# compares the picture shown as the result with the upload, pixel by pixel: (pixels that differ
# outside the box, inside it); both drawn at their own size on canvases of the page
COMPARE_JS = """
const [image, box] = arguments;
const width = image.naturalWidth, height = image.naturalHeight;
const pixels = (source) => {
  const context = new OffscreenCanvas(width, height).getContext("2d");
  context.drawImage(source, 0, 0);
  return context.getImageData(0, 0, width, height).data;
};
const after = pixels(image), before = pixels(edit.bitmap);
let outside = 0, inside = 0;
for (let y = 0; y < height; y++) {
  for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 4;
    if (after[i] === before[i] && after[i + 1] === before[i + 1] && after[i + 2] === before[i + 2]) continue;
    if (x >= box[0] && x < box[0] + box[2] && y >= box[1] && y < box[1] + box[3]) inside++; else outside++;
  }
}
return [outside, inside];
"""


def test_the_page_edits_an_uploaded_picture(tmp_path, monkeypatch):
    """Upload a picture, drag a box on it with the mouse, type a text, press Edit: the result
    appears beside the original, changed only inside the box, with what OCR reads."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from test_edit import photo

    upload = tmp_path / "photo.png"
    photo(96, 64).save(upload)
    with served_page(micro_config("micro16"), tmp_path, monkeypatch, edit_base=micro_scene_config("micro16rgb")) as (driver, lines):
        wait = WebDriverWait(driver, DRAW_S)
        wait.until(lambda d: d.find_element(By.ID, "edit").is_displayed())  # /api/model: editing is on
        assert "20 MB and 40 Mpx" in driver.find_element(By.ID, "edit-limits").text
        driver.find_element(By.ID, "edit-file").send_keys(str(upload))
        wait.until(lambda d: d.find_element(By.ID, "edit-canvas").is_displayed())
        canvas = driver.find_element(By.ID, "edit-canvas")
        width, height = canvas.size["width"], canvas.size["height"]
        assert abs(width / height - 96 / 64) < 0.02 and width >= 200  # the picture, scaled up to fit the panel
        scale = width / 96

        # drag from picture px (20, 10) to (80, 34) with the mouse (offsets from the canvas' centre; WebDriver
        # takes the centre of its part in view, so all of it must be in view)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)

        def offset(x, y):
            return round(x * scale - width / 2), round(y * scale - height / 2)

        start, end = offset(20, 10), offset(80, 34)
        (ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold()
         .move_by_offset(end[0] - start[0], end[1] - start[1]).release().perform())
        box = [int(value) for value in driver.find_element(By.ID, "edit-box").get_property("value").split(",")]
        assert all(abs(got - want) <= 1 for got, want in zip(box, (20, 10, 60, 24))), box  # converted to the picture's pixels

        driver.find_element(By.ID, "edit-text").send_keys("hi")
        driver.find_element(By.ID, "edit-seed").send_keys("5")
        driver.find_element(By.ID, "edit-run").click()
        wait.until(lambda d: d.find_element(By.ID, "edit-result").is_displayed() or d.find_element(By.ID, "edit-error").is_displayed())
        assert not driver.find_element(By.ID, "edit-error").is_displayed(), driver.find_element(By.ID, "edit-error").text
        result = driver.find_element(By.ID, "edit-result")
        assert result.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result) == [96, 64]
        # beside the original, at the same size
        assert result.location["x"] >= canvas.location["x"] + width and abs(result.location["y"] - canvas.location["y"]) <= 2
        assert abs(result.size["width"] - width) <= 1 and abs(result.size["height"] - height) <= 1
        outside, inside = driver.execute_script(COMPARE_JS, result, box)
        assert outside == 0 and inside > 0
        assert driver.find_element(By.ID, "edit-ocr").text != ""  # what OCR read, or "(nothing)"
        assert driver.find_element(By.ID, "edit-box-used").text == f"{','.join(map(str, box))} of 96x64"
        assert driver.find_element(By.ID, "edit-seed-used").text == "5"
        assert driver.find_element(By.ID, "edit-method").text.startswith("inpainting model")
    assert any(line.startswith(f"edited 'hi' box {','.join(map(str, box))} of a 96x64 PNG seed 5 x1 in") for line in lines), "\n".join(lines)
