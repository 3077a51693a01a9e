"""Regenerate the README's screenshot of ``glyphfuse serve`` (examples/serve.png).

Usage:

    python examples/serve_screenshot.py [--out examples/serve.png]

Starts ``glyphfuse serve`` with the packaged default model (no --checkpoint) on a free localhost
port, opens its page in headless Chromium (selenium, driven as tests/test_serve_browser.py does),
types a two-line prompt (Shift+Enter is the line break; Enter alone would draw), asks for 4
candidates, clicks Draw, waits for the image and what OCR reads, and saves a PNG of the page
(the blank margin below the page cropped off). Browser and server are stopped in every case.
--seed N (default 3, -1 random) is typed into the seed field, so the picture is repeatable.

Needs:
  * the packaged model (glyphfuse/default_model/) and the serve extra (starlette, uvicorn);
  * tesseract, /usr/bin/chromium and /usr/bin/chromedriver: `make test`'s setup
    (scripts/setup.sh) installs them with apt-get;
  * selenium, from the test extra: pip install -e '.[test,serve]'.
Selenium is given both paths and SE_OFFLINE is set, so selenium-manager never downloads anything.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageChops

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = (1100, 900)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                  f"--window-size={WINDOW[0]},{WINDOW[1]}")
PROMPT = ("OPEN 24h", "Call 555-0199")  # two lines
CANDIDATES = "4"
START_S, DRAW_S = 180, 120  # a busy machine: model load + warm-up; the sampling itself
MARGIN = 24  # px of background kept below the page's content


class ServerOutput:
    """The server's output lines, read on a thread (so its pipe never fills); the URL it prints."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.url: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "http://" in line:
                self.url.put("http://" + line.split("http://", 1)[1].split()[0])
        self.url.put(None)

    def text(self) -> str:
        return "\n".join(self.lines)


def start_server() -> tuple[subprocess.Popen, ServerOutput]:
    """``glyphfuse serve --host 127.0.0.1 --port 0`` (the system picks a free port; the URL printed says which)."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "glyphfuse", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    return process, ServerOutput(process)


def wait_for_model(process: subprocess.Popen, output: ServerOutput) -> tuple[str, dict]:
    """The page's URL once ``GET /api/model`` answers, and that answer; SystemExit with the server's output if not."""
    deadline = time.monotonic() + START_S
    try:
        url = output.url.get(timeout=START_S)
    except queue.Empty:
        url = None
    while url is not None and time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/model", timeout=10) as response:
                return url, json.load(response)
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"glyphfuse serve did not answer GET /api/model within {START_S} s:\n{output.text()}")


def stop_server(process: subprocess.Popen, output: ServerOutput) -> None:
    """Ctrl-C, as a person would; killed if it has not stopped within a minute."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            print("glyphfuse serve did not stop on Ctrl-C within 60 s: killed", file=sys.stderr)
    time.sleep(0.1)  # the reader thread takes the last lines
    if process.returncode != 0 or "glyphfuse serve: stopped" not in output.text():
        print(f"glyphfuse serve exited with {process.returncode}:\n{output.text()}", file=sys.stderr)


def chromium(profile: Path):
    """Headless Debian Chromium, the way tests/test_serve_browser.py starts it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def draw(driver, seed: int | None) -> dict:
    """Type the prompt, set the fields, click Draw, wait for the answer; what the page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, DRAW_S)
    wait.until(lambda d: ":" in d.find_element(By.ID, "model-name").text)  # the page read /api/model
    prompt = driver.find_element(By.ID, "prompt")
    prompt.clear()
    for i, line in enumerate(PROMPT):
        if i:
            prompt.send_keys(Keys.SHIFT, Keys.ENTER)  # a line break, not a submit
        prompt.send_keys(line)
    typed = prompt.get_property("value")
    if typed != "\n".join(PROMPT):
        raise SystemExit(f"the prompt field holds {typed!r}, not {chr(10).join(PROMPT)!r}")
    for field, value in (("candidates", CANDIDATES), ("seed", None if seed is None else str(seed))):
        found = driver.find_elements(By.ID, field)
        if found and value is not None:
            found[0].clear()
            found[0].send_keys(value)
    driver.find_element(By.ID, "draw").click()
    wait.until(lambda d: d.find_element(By.ID, "result-image").is_displayed() or d.find_element(By.ID, "error").is_displayed())
    if driver.find_element(By.ID, "error").is_displayed():
        raise SystemExit("the page shows an error: " + driver.find_element(By.ID, "error").text)
    image = driver.find_element(By.ID, "result-image")
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    wait.until(lambda d: d.find_element(By.ID, "ocr-text").is_displayed() and d.find_element(By.ID, "ocr-text").text != "")
    wait.until(lambda d: not d.find_element(By.ID, "draw").get_property("disabled"))  # the progress bar gone
    return {"image_px": driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image),
            "ocr": driver.find_element(By.ID, "ocr-text").text,
            "settings": driver.find_element(By.ID, "settings-used").text,
            "seed": driver.find_element(By.ID, "seed-used").text,
            "seconds": driver.find_element(By.ID, "seconds").text}


def save_cropped(png: bytes, out: Path) -> tuple[int, int]:
    """The screenshot less the blank rows below the page's content (MARGIN kept), optimized; its size."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    background = image.getpixel((width - 1, height - 1))
    blank = Image.new("RGB", image.size, background)
    box = ImageChops.difference(image, blank).getbbox()
    if box is not None:
        image = image.crop((0, 0, width, min(height, box[3] + MARGIN)))
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return image.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "serve.png", help="PNG to write (default: examples/serve.png)")
    parser.add_argument("--seed", type=int, default=3, help="seed typed into the page, for a repeatable picture (-1: random)")
    args = parser.parse_args()
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver (scripts/setup.sh does)")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager, should anything call it: no network

    process, output = start_server()
    driver = None
    try:
        url, model = wait_for_model(process, output)
        print(f"serving {model.get('name')} ({model.get('image_size')} px) at {url}")
        with tempfile.TemporaryDirectory(prefix="serve-screenshot-") as profile:
            try:
                driver = chromium(Path(profile))
                driver.get(url)
                shown = draw(driver, None if args.seed < 0 else args.seed)
                size = save_cropped(driver.get_screenshot_as_png(), args.out)
            finally:
                if driver is not None:
                    driver.quit()
    finally:
        stop_server(process, output)
    print(f"image {shown['image_px'][0]}x{shown['image_px'][1]}, OCR reads {shown['ocr']!r}, {shown['settings']}, "
          f"seed {shown['seed']}, {shown['seconds']}")
    print(f"wrote {args.out} ({size[0]}x{size[1]}, {args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
