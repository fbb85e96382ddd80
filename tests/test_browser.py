"""The dashboard in a real browser: `streamlit run dashboard/Home.py` on the fixture database, driven by
Playwright with Debian's chromium (`make browser` installs it). Saves one screenshot per page under
tmp_path and copies them to data/screenshots/ for review."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (run `make browser`)")]

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ERROR = '[data-testid="stException"]'
PAGES = ["Overview", "Distributions", "Confusion matrices", "ROC and precision-recall", "Disagreements",
         "Reviews", "Drivers", "Slices", "Over time", "Try it", "Training"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OTHER_DB = os.environ.get("BROWSER_TEST_DB")  # e.g. the database `make demo` built: every page checked on it


@contextmanager
def streamlit_on(db: Path):
    """`streamlit run dashboard/Home.py` on ``db``, on a free port: yields its URL."""
    port = free_port()
    env = {**os.environ, "SENTIMENT_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/Home.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("streamlit did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(request):
    with streamlit_on(OTHER_DB or request.getfixturevalue("scored_db").db) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def settle(tab) -> None:
    """Wait until the script has run (and the page has drawn) after an action."""
    tab.wait_for_timeout(300)
    tab.wait_for_selector(IDLE, timeout=30_000)
    tab.wait_for_timeout(400)


def no_error(tab, where: str) -> None:
    assert tab.locator(ERROR).count() == 0, f"{where}: {tab.locator(ERROR).first.inner_text()}"


# each y axis a chart draws: its drawn height and its description ("... for a discrete scale with 4 values: ...")
Y_AXES = """e => [...e.querySelectorAll('g.role-axis[aria-label^="Y-axis"]')].map(
    a => [a.getBBox().height, a.getAttribute('aria-label')])"""


def short_plots(tab) -> list[str]:
    """The charts on the page whose plot is drawn too short to read (squashed by a legend, a title or the
    axis labels): a continuous y axis under 100 px, or a discrete one under 14 px per value. Heights are
    read from the SVG the browser drew."""
    short = []
    for chart in tab.locator('[data-testid="stVegaLiteChart"]').all():
        for height, label in chart.evaluate(Y_AXES):
            values = re.search(r"discrete scale with (\d+) value", label)
            if height < (14 * int(values.group(1)) if values else 100):
                short.append(f"{label[:70]!r}: {height:.0f} px")
    return short


def whole_page_shot(tab, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its own container, so a full_page shot stops
    at the window; the window grows to the content first, then returns to its size."""
    size = tab.viewport_size
    height = size["height"]
    for _ in range(6):  # charts below the fold draw (and grow the page) once they are in view
        tall = tab.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
        if tall <= height:
            break
        height = tall + 50
        tab.set_viewport_size({"width": size["width"], "height": height})
        tab.wait_for_timeout(800)
    tab.screenshot(path=str(path), full_page=True)
    tab.set_viewport_size(size)


def test_every_page_in_a_browser(server, page, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.goto(server)
    settle(page)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    assert links.count() == len(PAGES)
    for i, title in enumerate(PAGES):
        links.nth(i).click()
        settle(page)
        page.get_by_role("heading", name=title).first.wait_for()
        no_error(page, title)
        if title == "Overview":  # the trained-on x evaluated-on matrix draws, for either metric
            page.get_by_role("heading", name="Trained on x evaluated on").wait_for()
            assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2  # accuracy CIs + the matrix
            roc_auc = page.get_by_role("radiogroup", name="Metric").get_by_role("radio", name="ROC-AUC")
            roc_auc.click()
            settle(page)
            no_error(page, "matrix metric")
            assert roc_auc.get_attribute("aria-checked") == "true"
            assert page.locator("[role=columnheader]", has_text="trained on").count() >= 1  # leaderboard
            assert page.locator('img[src="x"]').count() == 0
        if title == "ROC and precision-recall":
            before = page.locator('[data-testid="stSlider"]').first.inner_text()
            thumb = page.locator('[data-testid="stSlider"] input[type=range]').first
            thumb.focus()
            for _ in range(20):
                page.keyboard.press("ArrowRight")
            settle(page)
            no_error(page, "threshold slider")
            assert page.locator('[data-testid="stSlider"]').first.inner_text() != before
            assert "0.70" in page.locator('[data-testid="stSlider"]').first.inner_text()
        if title == "Reviews" and not OTHER_DB:  # the fixture holds the hostile reviews
            box = page.get_by_label("Text contains")
            box.fill("onerror=alert")
            box.press("Enter")
            settle(page)
            no_error(page, "text search")
            assert page.get_by_text("1 matching reviews").count() == 1
            shown = page.locator('[data-testid="stText"]').all_inner_texts()
            assert "<img src=x onerror=alert(1)>" in shown  # literally, as text
            assert page.locator('img[src="x"]').count() == 0  # never as HTML
        if title in ("Slices", "Over time") and page.get_by_text("Column", exact=True).count() + \
                page.get_by_text("Date column", exact=True).count():  # a corpus with kept columns: charts drawn
            page.locator('[data-testid="stVegaLiteChart"]').nth(1).wait_for()
        whole_page_shot(page, shots / f"{i + 1:02d}-{title.split()[0].lower()}.png")
        assert not short_plots(page), (title, short_plots(page))
    keep = ROOT / "data" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copyfile(shot, keep / shot.name)
    assert len(list(shots.iterdir())) == len(PAGES)


def test_models_trained_elsewhere_show_their_facts_in_a_fresh_database(scored_db, page, tmp_path):
    """A user scores their own file into a new database with models trained in another: the Overview shows
    each model's kind, parameters, size and trained-on corpus (from its model.json)."""
    from jobs import evaluate, score

    fresh = tmp_path / "fresh.duckdb"
    assert score.main([str(scored_db.csv), "--db", str(fresh), "--corpus", "mine", "--text-col", "review",
                       "--id-col", "id", "--label-col", "sentiment", "--models", "tfidf-lr,vader",
                       "--models-dir", str(scored_db.models_dir)]) == 0
    assert evaluate.main(["--db", str(fresh), "--bootstrap", "20"]) == 0
    with duckdb.connect(str(fresh), read_only=True) as con:
        facts = con.execute("SELECT model, kind, n_params > 0, bytes_on_disk > 0, trained_on, train_rows "
                            "FROM models ORDER BY model").fetchall()
    assert facts == [("tfidf-lr", "tfidf-lr", True, True, "imdb", 4000), ("vader", "vader", True, True, None, None)]
    with streamlit_on(fresh) as url:
        page.goto(url)
        settle(page)
        page.get_by_role("heading", name="Overview").first.wait_for()
        no_error(page, "Overview of a fresh database")
        board = page.locator('[data-testid="stDataFrame"]', has=page.locator("[role=columnheader]", has_text="parameters"))
        board.first.wait_for()
        whole_page_shot(page, tmp_path / "fresh-overview.png")
        # the grid draws on a canvas; its accessible table holds the drawn columns' raw values, row by row
        headers = [h.strip() for h in board.first.locator("th").all_inner_texts()]
        cells = [c.strip() for c in board.first.locator("td").all_inner_texts()]
        rows = {r[0]: dict(zip(headers, r)) for r in (cells[i:i + len(headers)]
                                                       for i in range(0, len(cells), len(headers)))}
        assert set(rows) == {"tfidf-lr", "vader"}, cells
        assert rows["tfidf-lr"]["trained on"] == "imdb"  # not "not recorded"
        assert rows["vader"]["trained on"] == "— (lexicon)"
        for model in rows.values():
            assert float(model["on disk"]) > 0 and float(model["parameters"]) > 0, model
            assert all(v not in ("", "None") for v in model.values()), model  # no fact left empty
        assert rows["vader"]["train reviews"] == "0"  # a lexicon learns from no review


def test_the_drug_reviews_drivers_by_condition_and_every_chart_readable(drugs_db, page, tmp_path):
    """The README's drug-review example: every page of its dashboard draws charts whose plots keep their
    height (short_plots), and the Drivers page compares one condition's negative reviews with the rest's."""
    keep = ROOT / "data" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    with streamlit_on(drugs_db) as url:
        page.goto(url)
        settle(page)
        links = page.locator('[data-testid="stSidebarNavLink"]')
        drawn = {}
        for i, title in enumerate(PAGES):
            links.nth(i).click()
            settle(page)
            page.get_by_role("heading", name=title).first.wait_for()
            no_error(page, title)
            whole_page_shot(page, tmp_path / f"{i + 1:02d}.png")
            drawn[title] = page.locator('[data-testid="stVegaLiteChart"]').count()
            assert not short_plots(page), (title, short_plots(page))
        assert all(drawn[t] >= 1 for t in ("Overview", "Distributions", "Slices", "Over time")), drawn

        links.nth(PAGES.index("Drivers")).click()
        settle(page)
        page.get_by_text("a slice against the rest", exact=True).click()
        settle(page)
        for label, option in (("Column", "condition"), ("Slice", "Birth Control")):
            page.locator('[data-testid="stSelectbox"]', has_text=label).click()
            page.get_by_role("option", name=option, exact=True).click()
            settle(page)
        no_error(page, "Drivers: a condition against the rest")
        page.get_by_text("Typical of condition = Birth Control").wait_for()
        page.get_by_text("Typical of the rest").wait_for()
        page.get_by_text("Over time, by").wait_for()  # the term's share over time: the corpus has dates
        assert page.locator("mark").count() >= 1  # the term marked in its reviews
        whole_page_shot(page, keep / "drivers-drugs-condition.png")
        assert not short_plots(page), short_plots(page)
