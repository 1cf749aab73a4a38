"""Widgets work where students use them: lesson 01 in JupyterLab, driven by headless Chromium.

Starts JupyterLab on 127.0.0.1, opens lesson 01 (prepared with PROFILE="smoke"), runs all cells,
moves the window/level explorer's "level" slider and checks that the image changes. Skipped when
Chromium or Playwright is not installed (.ci/run installs both).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "01_medical_images.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    import papermill as pm

    pm.execute_notebook(str(LESSON), str(tmp_path / LESSON.name), parameters={"PROFILE": "smoke",
                        "OUTPUT_DIR": str(tmp_path / "out")}, prepare_only=True)
    port, token = _free_port(), "medkit-browser-test"
    env = {**os.environ, "MEDKIT_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=None",
         "--ServerApp.disable_check_xsrf=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield base, token
    server.terminate()
    server.wait(timeout=30)


def _wait_until_kernel_idle(base: str, token: str, timeout: float = 300) -> None:
    """Wait until every kernel has been idle for three polls in a row."""
    deadline, idle_polls = time.time() + timeout, 0
    while time.time() < deadline and idle_polls < 3:
        kernels = json.load(urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5))
        idle_polls = idle_polls + 1 if kernels and all(k["execution_state"] == "idle" for k in kernels) else 0
        time.sleep(1)
    if idle_polls < 3:
        pytest.fail(f"the lesson's kernel was still busy after {timeout} s")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(not LESSON.exists(), reason="lesson 01 is missing")
@pytest.mark.timeout(420)
def test_window_level_slider_redraws_the_ct_image(jupyterlab):
    base, token = jupyterlab
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LESSON.name}?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        _wait_until_kernel_idle(base, token)
        page.click("text=Run", timeout=30_000)
        page.click("text=Run All Cells")
        level = page.locator(".widget-slider").filter(has=page.locator("label", has_text="level")).first
        error = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").first
        level.or_(error).wait_for(state="attached", timeout=300_000)
        if error.count():  # fail with the lesson's own traceback, not a five-minute timeout
            pytest.fail(f"lesson 01 raised in JupyterLab:\n{error.text_content()[-2000:]}")
        _wait_until_kernel_idle(base, token)  # a slider's callback runs only once the kernel has finished "Run All"
        level.scroll_into_view_if_needed()
        box = level.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
        image = box.locator("img").first
        image.wait_for(state="attached", timeout=30_000)
        before = image.get_attribute("src")
        readout = level.locator(".widget-readout")
        page.wait_for_function("el => el.textContent.trim() !== ''", arg=readout.element_handle(), timeout=30_000)
        old_value = int(readout.text_content().strip().replace("\u2212", "-"))  # the readout prints a true minus sign
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(old_value + 400))
        page.keyboard.press("Enter")
        page.wait_for_function("([img, before]) => img.getAttribute('src') !== before", arg=[image.element_handle(), before],
                               timeout=60_000)
        assert image.get_attribute("src") != before
        browser.close()
