"""The run report page (python -m reporting) rendered from small fixture reports."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson
import pytest

from reporting.page import CONVENTIONS, build_page
from tests.report_fixtures import REPO, generated_history, write_reports


class Links(HTMLParser):
    """Every ``src`` and ``href`` of a page, with the tag, and the ids and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))
            if name == "id" and value:
                self.ids.add(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text())
    return links


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    return write_reports(root / "reports", generated_history(root / "history.jsonl"))


def test_every_section_is_shown_and_every_reference_exists(reports: Path) -> None:
    page = build_page(reports, log=pytest.fail)
    links = parse(page)
    text = " ".join(links.text)
    assert "Not in this run" not in text and "Not shown" not in text
    images = [v for tag, _, v in links.refs if tag == "img"]
    explored = {name: orjson.loads((reports / "explore" / name / "summary.json").read_bytes())["plots"]
                for name in ("generated", "otto")}
    assert len(explored["generated"]) == 9  # every chart (OTTO lacks prices, countries and segments)
    assert set(explored["otto"]) == set(explored["generated"]) - {"price_by_category", "category_segment"}
    # evaluation 3 + retrieval 3 + experiment 3 + checks 1 + the explorations' charts
    assert len(images) == 10 + sum(map(len, explored.values())), images
    assert len(set(images)) == len(images)
    for tag, attr, value in links.refs:
        if value.startswith("data:"):
            continue
        parts = urlsplit(value)
        assert not parts.scheme and not parts.netloc, f"<{tag} {attr}={value}> leaves the page's folder"
        if value.startswith("#"):
            assert value[1:] in links.ids, f"<{tag} {attr}={value}>: no such anchor"
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_file(), f"<{tag} {attr}={value}>: {target} does not exist"
        if tag == "img":
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", value
    # the numbers of the reports reach the page
    evaluation = orjson.loads((reports / "evaluation.json").read_bytes())
    assert f"{evaluation['results']['dlrm']['auc']:,.4f}" in text
    experiment = orjson.loads((reports / "experiments" / "offline.json").read_bytes())
    assert experiment["verdict"] in text
    assert "unparseable" in text and "duplicate" in text  # dead letters by reason
    assert "no views, prices" not in text  # OTTO's gaps are named field by field instead:
    assert "view, category, price, country" in text


def test_a_run_without_reports_names_the_command_for_each_part(tmp_path: Path) -> None:
    page = build_page(tmp_path, log=pytest.fail)
    links = parse(page)
    text = " ".join(links.text)
    assert not [v for tag, _, v in links.refs if tag == "img"]
    for c in CONVENTIONS:
        if c.section == "benchmarks":  # falls back to the repository's benchmarks/README.md
            continue
        first_command = c.produced_by.split("`")[1]
        assert first_command in text, f"{c.section}: no line saying how to produce it"
    assert text.count("Not in this run") == len(CONVENTIONS) - 1


def test_an_unreadable_report_is_one_line_and_the_rest_is_shown(reports: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    for name in ("evaluation.json", "roc.png", "calibration.png", "training_curve.png"):
        (folder / name).write_bytes((reports / name).read_bytes())
    (folder / "retrieval.json").write_text("{not json")
    logged: list[str] = []
    page = build_page(folder, log=logged.append)
    text = " ".join(parse(page).text)
    assert len(logged) == 1 and "retrieval" in logged[0] and "retrieval.json" in logged[0]
    assert "Not shown: could not be read (retrieval.json" in text
    assert "Not in this run" in text  # other sections
    assert sum(1 for tag, _, _ in parse(page).refs if tag == "img") == 3


def test_the_page_uses_nothing_from_the_network(reports: Path) -> None:
    html = build_page(reports).read_text()
    assert "<script" not in html
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("://", "")


def test_cli_rebuilds_the_page_and_refuses_a_missing_folder(reports: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    done = subprocess.run([sys.executable, "-m", "reporting", "--reports", str(reports), "--out", str(out)],
                          check=False, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and str(out) in done.stdout
    for tag, _, value in parse(out).refs:  # written elsewhere, the links still lead to the reports
        if tag == "img":
            assert (out.parent / value).is_file(), value
    bad = subprocess.run([sys.executable, "-m", "reporting", "--reports", str(tmp_path / "nope")],
                         check=False, capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr
