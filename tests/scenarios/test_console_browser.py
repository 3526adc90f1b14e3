"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright. Upload a voice,
synthesize a sentence, wait for playable audio, take a screenshot; on a phone-sized viewport nothing scrolls
sideways. `.ci/run` installs Chromium, so CI always runs this; elsewhere it is skipped, saying why."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from consumer.engine.fake import FakeEngine
from tests.scenarios.test_api import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")


def test_the_console_uploads_a_voice_and_plays_what_it_synthesized(stack, make_worker, reference_wav, tmp_path):
    clip = tmp_path / "narrator.wav"
    clip.write_bytes(reference_wav)
    worker, _ = make_worker(FakeEngine(), burst=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    artifacts = Path(os.environ.get("F5_WORKER_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        with serving(stack.settings(burst=False)) as url, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(f"{url}/")
            page.wait_for_selector("#voices li")

            page.fill("#voice-id", "narrator")
            page.set_input_files("#voice-file", str(clip))
            page.fill("#voice-transcript", "Some call me nature, others call me mother nature.")
            page.click("#voice-add")
            page.wait_for_function("document.getElementById('voice-status').textContent === 'added narrator'")
            page.wait_for_function("[...document.querySelectorAll('#voice option')].some(o => o.value === 'narrator')")

            page.select_option("#voice", "narrator")
            page.fill("#text", "Hello from the browser.")
            page.click("#speak")
            page.wait_for_function("document.getElementById('player').duration > 0", timeout=60_000)
            assert page.locator("#speak-status").text_content().startswith("done in")
            assert page.get_attribute("#download", "download").endswith(".wav")
            page.wait_for_function("document.querySelectorAll('#jobs .pill.completed').length > 0", timeout=15_000)
            page.wait_for_selector("#queue div")
            page.screenshot(path=str(artifacts / "console.png"), full_page=True)

            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            for loaded in ("#voices li", "#jobs li", "#queue div"):
                page.wait_for_selector(loaded)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{overflow}px of horizontal scroll on a phone"
            page.screenshot(path=str(artifacts / "console-phone.png"), full_page=True)
            icon = page.request.get(f"{url}/favicon.ico")
            assert icon.ok and icon.headers["content-type"] == "image/svg+xml"
            browser.close()
        assert console_errors == [] and failed == [], (console_errors, failed)  # the favicon was the last one
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert (artifacts / "console.png").stat().st_size > 10_000
