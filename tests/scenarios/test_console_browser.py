"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright. Upload a voice,
synthesize a sentence (streamed: played with Web Audio while the job runs, then a WAV in the player), take a
screenshot; on a phone-sized viewport nothing scrolls sideways. A five-sentence job made slowly starts playing
well before it ends and shows its progress. `.ci/run` installs Chromium, so CI always runs this; elsewhere it is
skipped, saying why."""

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
# headless Chromium may keep an AudioContext suspended without this; streaming schedules its audio either way
BROWSER_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]


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
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
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
            assert page.evaluate("f5Stream.chunks") >= 1, "the default is streamed"
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


def test_the_console_plays_a_slow_job_while_it_is_made(stack, make_worker):
    # 0.5 s per sentence, each sentence's block sent as it is made; progress written as often as it changes
    worker, _ = make_worker(FakeEngine(chunk_s=0.5), burst=False, progress_interval_s=0.2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        with serving(stack.settings(burst=False)) as url, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(f"{url}/")
            page.wait_for_function("[...document.querySelectorAll('#voice option')].some(o => o.value === 'basic-en')")
            assert page.is_checked("#stream") and page.is_disabled("#format")
            assert "uncheck Stream" in page.get_attribute("#format", "title")

            page.select_option("#voice", "basic-en")
            page.fill(  # over the first chunk's bound: the first sentence alone, then a block per sentence
                "#text",
                "One comes first of all. Two follows it closely. Three is here as well. Four is near the end. "
                "Five ends it.",
            )
            page.click("#speak")
            page.wait_for_function("document.getElementById('speak-status').textContent.startsWith('playing while')")
            page.wait_for_function("document.getElementById('player').duration > 0", timeout=60_000)
            stats = page.evaluate("f5Stream")
            duration = page.evaluate("document.getElementById('player').duration")
            status = page.locator("#speak-status").text_content()
            browser.close()
    finally:
        worker.stop()
        thread.join(timeout=60)
    print(f"first audio after {stats['firstAudioMs']:.0f} ms, done after {stats['doneMs']:.0f} ms: {stats}")
    assert stats["firstAudioMs"] < stats["doneMs"] - 1000, stats
    assert stats["progressSeen"] >= 1, stats
    assert stats["chunks"] >= 3 and abs(stats["seconds"] - duration) < 0.05, (stats, duration)
    assert status.startswith("done in") and "first audio after" in status, status
    assert console_errors == [] and failed == [], (console_errors, failed)
