"""The run report in a real browser: headless Chromium (reporting/browser.py) loads it offline.

Skipped when no Chromium is installed (``.ci/run`` installs the Debian package ``chromium``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporting.browser import PageCheck, check_page, find_browser
from reporting.page import build_page
from tests.report_fixtures import generated_history, small_png, write_reports

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install chromium)")


def screenshot_pixels(check: PageCheck) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(check.screenshot)).convert("L"), dtype=np.float64)  # (H, W)


def test_the_report_loads_without_errors_and_shows_every_picture(tmp_path: Path) -> None:
    reports = write_reports(tmp_path / "reports", generated_history(tmp_path / "history.jsonl", count=2000))
    page = build_page(reports)
    check = check_page(page, BROWSER)
    assert check.console_errors == []
    assert len(check.images) == page.read_text().count("<img ")
    assert check.images and check.broken_images == []
    assert all(im["natural_width"] > 0 for im in check.images)
    pixels = screenshot_pixels(check)
    assert pixels.shape[0] > 1000  # the whole page, not the first screen
    assert pixels.std() > 10  # not blank: text and plots on white
    assert (pixels < 128).mean() > 0.01


def test_the_check_sees_a_broken_picture_and_a_console_error(tmp_path: Path) -> None:
    small_png(tmp_path / "ok.png", "ok")
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><head><link rel="icon" href="data:,"></head><body><p>text</p>'
                    '<img src="ok.png"><img src="missing.png">'
                    '<script>console.error("planted")</script></body></html>')
    check = check_page(page, BROWSER)
    assert [Path(src).name for src in check.broken_images] == ["missing.png"]
    assert any("planted" in e for e in check.console_errors)
    assert any("missing.png" in e for e in check.console_errors)  # the failed load is logged too


def test_a_blank_page_gives_a_blank_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "blank.html"
    page.write_text('<!doctype html><html><head><link rel="icon" href="data:,"></head><body></body></html>')
    check = check_page(page, BROWSER)
    assert check.console_errors == [] and check.images == []
    assert screenshot_pixels(check).std() == 0
