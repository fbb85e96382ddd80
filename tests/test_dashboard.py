"""The dashboard, page by page, through streamlit.testing.v1.AppTest on the database the real jobs built
(the session fixture ``scored_db``: corpus 'sample' scored by tfidf-lr + vader and evaluated)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.paths import REPO_ROOT
from dashboard import data
from jobs import evaluate, score, train
from tests.helpers import HOME, JOIN_TEXTS, frames, q, write_csv

PAGES = {
    "overview": "Overview", "distributions": "Distributions", "confusion": "Confusion matrices",
    "curves": "ROC and precision-recall", "disagreements": "Disagreements", "reviews": "Reviews", "drivers": "Drivers",
    "try_it": "Try it", "training": "Training", "slices": "Slices", "over_time": "Over time",
}
IMG = "<img src=x onerror=alert(1)>"
DROP = "'; DROP TABLE predictions; --"


def open_app(db: Path, monkeypatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv("SENTIMENT_DB", str(db))
    at = AppTest.from_file(HOME, default_timeout=60)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def all_text(at: AppTest) -> str:
    parts = [e.value for e in [*at.markdown, *at.text, *at.code, *at.caption, *at.info, *at.warning]]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def unlabelled_db(scored_db, tmp_path_factory) -> Path:
    """A copy of the fixture database plus a corpus without labels, scored by the real job."""
    root = tmp_path_factory.mktemp("unlabelled")
    db = root / "reviews.duckdb"
    store.texts.copy_database(scored_db.db, db)
    lines = scored_db.csv.read_text(encoding="utf-8").splitlines()
    csv = root / "nolabels.csv"
    import csv as csvlib

    with open(scored_db.csv, newline="", encoding="utf-8") as f, open(csv, "w", newline="", encoding="utf-8") as out:
        rows = list(csvlib.reader(f))[:21]
        csvlib.writer(out).writerows([r[:2] for r in rows])
    assert len(lines) > 20
    assert score.main([str(csv), "--db", str(db), "--corpus", "unlabelled", "--text-col", "review",
                       "--id-col", "id", "--models", "tfidf-lr,vader", "--models-dir", str(scored_db.models_dir)]) == 0
    return db


# ---------------------------------------------------------------- no data


def test_missing_database_shows_what_to_run(tmp_path, monkeypatch):
    at = open_app(tmp_path / "nothing.duckdb", monkeypatch)
    assert "make demo" in at.code[0].value and "jobs.score" in at.code[0].value
    assert "No database" in at.warning[0].value


def test_empty_database_shows_what_to_run(tmp_path, monkeypatch):
    db = tmp_path / "empty.duckdb"
    with store.connect(db):
        pass
    store.publish(db)
    at = open_app(db, monkeypatch)
    assert "make demo" in at.code[0].value
    assert "no predictions" in at.warning[0].value


def test_before_a_first_publish_the_dashboard_leaves_the_main_file_to_the_job(scored_db, tmp_path, monkeypatch):
    db = tmp_path / "first.duckdb"
    with store.connect(db):  # a first job has created the file and not published yet
        pass
    at = open_app(db, monkeypatch)
    assert "No published results" in at.warning[0].value
    # the dashboard stays open; a job started now must get its write lock (the old fallback held the file)
    r = subprocess.run([sys.executable, "-m", "jobs.score", str(scored_db.csv), "--db", str(db), "--corpus", "c",
                        "--text-col", "review", "--models", "vader"], check=False, cwd=REPO_ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    at.run()
    assert not any("No published results" in w.value for w in at.warning)
    assert len(at.dataframe) > 0  # the Overview draws its tables from the newly published file


# ---------------------------------------------------------------- every page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(scored_db, monkeypatch, page):
    at = open_app(scored_db.db, monkeypatch, page)
    assert at.title[0].value == PAGES[page]
    assert at.sidebar.selectbox(key="corpus").value == "sample"
    assert set(at.sidebar.multiselect(key="models").value) == {"tfidf-lr", "vader"}


def test_overview_leaderboard(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "overview")
    corpora, board = frames(at)[:2]
    assert corpora.set_index("corpus").loc["sample", "reviews"] == scored_db.n_rows
    assert set(board["model"]) == {"tfidf-lr", "vader"}
    assert board["accuracy"].between(0, 1).all() and (board["accuracy_lo"] <= board["accuracy"]).all()
    assert board["rows_per_s"].notna().all()
    assert board.set_index("model").loc["tfidf-lr", "bytes_on_disk"] > 0


def test_sidebar_choice_persists_across_pages(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "overview")
    at.sidebar.multiselect(key="models").set_value(["vader"]).run()
    assert list(frames(at)[1]["model"]) == ["vader"]
    at.switch_page("views/confusion.py").run()
    assert at.sidebar.multiselect(key="models").value == ["vader"]
    assert at.selectbox(key="cm_model").options == ["vader"]


def test_distributions_split_by_label(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "distributions")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2 and "group" in charts[0].proto.spec
    at.segmented_control(key="dist_by").set_value("label").run()
    assert not at.exception
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert len(specs) == 2 and all('"row"' in s or '"facet"' in s for s in specs)


def test_confusion_cell_lists_its_reviews(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "confusion")
    at.selectbox(key="cm_model").set_value("vader")
    at.radio(key="cm_cell").set_value("tp").run()
    tp = frames(at)[0]
    assert len(tp) > 0 and (tp["label"] == "positive").all() and (tp["p_positive"] >= 0.5).all()
    at.radio(key="cm_cell").set_value("fp").run()
    fp = frames(at)[0]
    assert (fp["label"] == "negative").all() and (fp["p_positive"] >= 0.5).all()
    assert fp["text"].notna().all()
    with duckdb.connect(str(store.view_path(scored_db.db)), read_only=True) as con:
        n_fp = con.execute("SELECT count(*) FROM predictions p JOIN reviews r USING (corpus, review_id) "
                           "WHERE p.corpus = 'sample' AND p.model = 'vader' AND r.label = 'negative' "
                           "AND p.p_positive >= 0.5").fetchone()[0]
    assert len(fp) == min(n_fp, data.TEXT_ROWS)
    assert fp["p_positive"].is_monotonic_decreasing  # the most confident first


def test_threshold_slider_recomputes_in_sql(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "curves")
    at_half = frames(at)[0].set_index("model")
    at.slider(key="threshold").set_value(0.9).run()
    at_high = frames(at)[0].set_index("model")
    for m in ("tfidf-lr", "vader"):
        assert at_high.loc[m, "tp"] + at_high.loc[m, "fp"] < at_half.loc[m, "tp"] + at_half.loc[m, "fp"]
        assert at_high.loc[m, "tn"] + at_high.loc[m, "fp"] == at_half.loc[m, "tn"] + at_half.loc[m, "fp"]
    assert len(at.get("vega_lite_chart")) == 4  # ROC, PR, confusion, calibration


def test_disagreements_and_label_errors(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "disagreements")
    table = frames(at)[0]
    assert {"tfidf-lr", "vader", "text", "label"} <= set(table.columns)
    spread = (table["tfidf-lr"] - table["vader"]).abs()
    assert (spread - table["spread"]).abs().max() < 1e-9
    assert table["spread"].is_monotonic_decreasing
    at.toggle(key="dis_contradict").set_value(True).run()
    wrong = frames(at)[0]
    assert len(wrong) > 0
    predicted = wrong[["tfidf-lr", "vader"]].map(lambda p: "positive" if p >= 0.5 else "negative")
    assert predicted.ne(wrong["label"], axis=0).all().all()


def test_reviews_filters_and_hostile_text_shown_literally(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "reviews")
    everything = frames(at)[0]
    assert len(everything) == 50  # one page
    at.text_input(key="rv_search").input("onerror=alert").run()
    rows = frames(at)[0]
    assert list(rows["review_id"]) == ["h0"] and rows["text"].iloc[0] == IMG
    assert at.text[1].value == IMG  # st.text: shown as text, never as HTML
    assert all(IMG not in m.value for m in at.markdown)
    at.text_input(key="rv_search").input(DROP).run()
    assert frames(at)[0]["text"].tolist() == [DROP]
    assert at.text[1].value == DROP
    at.text_input(key="rv_search").input("").run()
    at.selectbox(key="rv_label").set_value("negative")
    at.selectbox(key="rv_correct").set_value("incorrect").run()
    wrong = frames(at)[0]
    assert len(wrong) > 0 and (wrong["label"] == "negative").all() and (wrong["predicted"] == "positive").all()


def test_try_it_scores_with_every_model(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "try_it")
    at.text_area(key="try_text").input("An awful, boring, terrible film. I hated it.").run()
    scores = frames(at)[0].set_index("model")["p_positive"]
    assert set(scores.index) == {"tfidf-lr", "vader"} and (scores < 0.5).all()
    at.multiselect(key="try_models").set_value(["vader"]).run()  # only the models asked for are loaded
    assert frames(at)[0]["model"].tolist() == ["vader"]
    from dashboard import explaining

    assert explaining.is_loaded("vader") and explaining.is_loaded("tfidf-lr")  # loaded once, answering at once


def test_training_curves(scored_db, monkeypatch):
    at = open_app(scored_db.db, monkeypatch, "training")
    assert len(at.get("vega_lite_chart")) >= 1
    assert "tfidf-lr" in set(frames(at)[0]["model"])


@pytest.mark.slow  # make test-slow
def test_a_bitbert_trained_by_the_job_shows_its_loss_curve(scored_db, tmp_path, monkeypatch):
    """jobs.train records the student's loss terms every few steps (training_terms); the Training page draws
    them for the models shown."""
    db, models = tmp_path / "reviews.duckdb", tmp_path / "models"
    store.texts.copy_database(scored_db.db, db)
    tiny = ["layers=1", "max_len=32", "epochs=2", "batch_size=4", "train_rows=16", "val_rows=8"]
    assert train.main(["--model", "bitbert", "--name", "tiny-bit", "--db", str(db), "--models-dir", str(models),
                       *[arg for kv in tiny for arg in ("--set", kv)]]) == 0
    with store.connect(db, read_only=True) as con:
        curve = con.execute("SELECT step, examples, term, value FROM training_terms WHERE model = 'tiny-bit' "
                            "ORDER BY step").df()
    assert set(curve["term"]) == {"ce"}  # labels only: the cross-entropy is the whole loss
    assert curve["step"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # 16 reviews / 4 per step x 2 epochs: every step
    assert curve["examples"].tolist() == [4 * s for s in range(1, 9)]
    assert (curve["value"] > 0).all() and np.isfinite(curve["value"]).all()

    at = open_app(db, monkeypatch, "training")
    assert not at.exception
    assert "Loss terms within training" in [h.value for h in at.subheader]
    drawn = [c for c in at.get("vega_lite_chart") if "training examples seen" in str(c.proto.spec)]
    assert len(drawn) == 1
    at.multiselect(key="train_models").set_value(["tfidf-lr"]).run()  # a model without terms: no such chart
    assert "Loss terms within training" not in [h.value for h in at.subheader]


def test_unlabelled_corpus_pages_show_a_note(unlabelled_db, monkeypatch):
    at = open_app(unlabelled_db, monkeypatch)
    at.sidebar.selectbox(key="corpus").set_value("unlabelled").run()
    assert at.sidebar.selectbox(key="split").value == "all"
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page in ("confusion", "curves"):
            assert "no positive/negative labels" in all_text(at)


# ---------------------------------------------------------------- the data layer


def test_queries_bind_user_text(scored_db):
    view = store.view_path(scored_db.db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    hostile = data.ReviewFilter("sample", "all", "vader", search=DROP)
    assert data.review_count(src, hostile) == 1
    everything = data.review_count(src, hostile._replace(search=""))
    assert data.review_count(src, hostile._replace(search="%%%%")) == 0  # LIKE wildcards are escaped
    assert data.review_count(src, hostile._replace(search="_")) < everything
    assert b"DROP TABLE" in data.review_csv(src, hostile)
    with duckdb.connect(str(scored_db.db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] > 0


def test_dashboard_reads_the_view_and_never_blocks_a_job(scored_db, tmp_path, monkeypatch):
    db = tmp_path / "reviews.duckdb"
    store.texts.copy_database(scored_db.db, db)
    store.publish(db)
    monkeypatch.setenv("SENTIMENT_DB", str(db))
    src = data.source()
    assert src.path == str(store.view_path(db))
    before = data.corpora(src)
    with store.connect(db) as con:  # a job opens the main file read-write while the dashboard is open
        store.upsert_corpus(con, "later", "x.csv", {})
    assert data.corpora(data.source()).equals(before)  # unpublished: not shown
    store.publish(db)
    after = data.source()
    assert after.mtime_ns != src.mtime_ns
    assert "later" in set(data.corpora(after)["corpus"])


def test_binned_curves_match_the_evaluated_metrics(scored_db):
    """The ROC/PR curves come from the 1/1000-binned cube; their AUC must agree with jobs.evaluate's."""
    view = store.view_path(scored_db.db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    models = ("tfidf-lr", "vader")
    points = data.roc_pr(src, "sample", "all", models, step=1)
    assert points.groupby("model")["fpr"].max().eq(1).all() and points.groupby("model")["tpr"].max().eq(1).all()
    binned = store.cube.aucs(data.cube(src, "sample", "all"), models).set_index("model")["roc_auc"]  # no override
    stored = data.leaderboard(src, "sample", "all", models).set_index("model")["roc_auc"]
    assert (binned - stored).abs().max() < 0.01
    at_half = data.confusion(src, "sample", "all", models, 0.5).set_index("model")
    shares = data.shares(src, "sample", "all", models)
    positives = shares[shares["predicted"] == "positive"].set_index("model")["n"]
    assert (at_half["tp"] + at_half["fp"]).equals(positives.astype(at_half["tp"].dtype))  # labels are all binary
    calib = data.calibration(src, "sample", "all", models)
    assert calib.groupby("model")["n"].sum().eq(scored_db.n_rows).all()


def test_binned_aucs_equal_sklearn_for_a_model_piled_near_0_and_1(tmp_path):
    """The ROC/PR legend's AUCs where jobs.evaluate has not run (the 1/1000-binned cube) against scikit-learn,
    for a confident model: most probabilities in the top and bottom bins, so the highest bins hold positives
    only. A bin without negatives once made every cumulative precision above the first negative NULL, and
    the legend lost that area (measured on the clothing reviews: PR-AUC 0.71-0.93 where sklearn's average
    precision was 0.99)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.85
    p = np.where(y, 1 - rng.beta(0.3, 30, 3000), rng.beta(0.3, 30, 3000))  # piled at the ends
    wrong = rng.random(3000) < 0.05  # mistakes, less confident than the right answers: the top bins hold
    p = np.where(wrong, np.where(y, rng.uniform(0.01, 0.5, 3000), rng.uniform(0.5, 0.99, 3000)), p)  # positives only
    db = tmp_path / "piled.duckdb"
    ids = [f"r{i}" for i in range(len(y))]
    with store.connect(db) as con:
        store.upsert_corpus(con, "piled", "test", {})
        store.insert_reviews(con, "piled", pd.DataFrame({
            "review_id": ids, "text": "a review", "label": np.where(y, "positive", "negative"), "split": None,
            "source_row": np.arange(len(y))}))
        store.insert_predictions(con, "piled", "confident", ids, p, "run")
    store.publish(db)
    view = store.view_path(db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    aucs = data.aucs(src, "piled", "all", ("confident",)).set_index("model").loc["confident"]
    assert abs(aucs["pr_auc"] - average_precision_score(y, p)) < 0.002
    assert abs(aucs["roc_auc"] - roc_auc_score(y, p)) < 0.002
    points = data.roc_pr(src, "piled", "all", ("confident",))
    assert points["precision"].notna().sum() == len(points) - 1  # every point but the (0, 0) start is drawn


def test_a_running_job_without_a_view_is_explained(tmp_path, monkeypatch):
    """Another process holds the main file read-write and nothing is published yet: a clear message."""
    db = tmp_path / "reviews.duckdb"
    hold = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('CREATE TABLE t (x INT)'); "
            "print('open', flush=True); sys.stdin.read()")
    job = subprocess.Popen([sys.executable, "-c", hold, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert job.stdout.readline().strip() == "open"
        at = open_app(db, monkeypatch)
        assert "No published results" in at.warning[0].value
        assert "make demo" in at.code[0].value
    finally:
        job.stdin.close()
        job.wait(10)


def test_text_search_is_a_literal_case_insensitive_substring(scored_db):
    view = store.view_path(scored_db.db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    texts = [r[0] for r in q(view, "SELECT text FROM texts WHERE corpus = 'sample'")]
    for term in ["WONDERFUL", "a.b", "(", "\\", "[x]", "%", "_", "'; drop table", "ONERROR=alert(1)", "10/10",
                 "$", "^", "*", "{2}", "|", "?", "<script>"]:
        expected = sum(term.lower() in t.lower() for t in texts)
        assert data.review_count(src, data.ReviewFilter("sample", "all", "vader", search=term)) == expected, term


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.73, 0.999, 1.0])
def test_confusion_at_a_threshold_is_exact(scored_db, threshold):
    view = store.view_path(scored_db.db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    # data.confusion (the Confusion page) is data.confusion_at (the slider's): one exact check covers both
    check_confusion(data.confusion(src, "sample", "all", ("tfidf-lr", "vader"), threshold).set_index("model"),
                    view, threshold)


def check_confusion(got, view, threshold):
    with duckdb.connect(str(view), read_only=True) as con:
        rows = con.execute("SELECT p.model, r.label, p.p_positive FROM predictions p JOIN reviews r "
                           "USING (corpus, review_id) WHERE p.corpus = 'sample'").fetchall()
    for model in ("tfidf-lr", "vader"):
        pairs = [(label, p >= threshold) for m, label, p in rows if m == model]
        expected = {"tn": pairs.count(("negative", False)), "fp": pairs.count(("negative", True)),
                    "fn": pairs.count(("positive", False)), "tp": pairs.count(("positive", True))}
        assert {k: int(got.loc[model, k]) for k in expected} == expected


# ---------------------------------------------------------------- where models learnt, across corpora

STALE = 0.111  # accuracy of a stale 'all' evaluation of shop, from before it had a split: never shown


@pytest.fixture(scope="module")
def cross_db(scored_db, tmp_path_factory) -> Path:
    """A copy of the fixture database where two trained models learnt from different corpora and both were
    evaluated on two corpora, by the real jobs: corpus 'shop' (400 labelled reviews with their own
    train/validation/test column) is scored by tfidf-lr (trained on imdb); 'shop-lr' is trained on shop's
    train split and scored on shop and on 'sample'. vader (recorded as the make pipeline does, "trained")
    is never scored on shop: an empty cell."""
    root = tmp_path_factory.mktemp("cross")
    db, models = root / "reviews.duckdb", root / "models"
    store.texts.copy_database(scored_db.db, db)
    shutil.copytree(scored_db.models_dir, models)
    rows = q(db, f"SELECT text, label FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' AND split = 'train' "
                 "ORDER BY source_row LIMIT 400")
    splits = ["train"] * 300 + ["validation"] * 50 + ["test"] * 50
    csv = write_csv(root / "shop.csv", ["id", "review", "sentiment", "split"],
                    [[f"p{i:03d}", text, label, split] for i, ((text, label), split) in enumerate(zip(rows, splits))])
    common = ["--db", str(db), "--models-dir", str(models)]
    assert score.main([str(csv), "--corpus", "shop", "--text-col", "review", "--id-col", "id", "--label-col",
                       "sentiment", "--split-col", "split", "--models", "tfidf-lr", *common]) == 0
    assert train.main(["--model", "tfidf-lr", "--name", "shop-lr", "--corpus", "shop", *common]) == 0
    assert train.main(["--model", "vader", "--name", "vader", "--corpus", "shop", *common]) == 0  # recorded
    assert score.main(["--corpus", "shop", "--split", "test", "--models", "shop-lr", *common]) == 0
    assert score.main(["--corpus", "sample", "--models", "shop-lr", *common]) == 0
    assert evaluate.main(["--db", str(db), "--bootstrap", "20"]) == 0
    with store.connect(db) as con:  # what an evaluation from before shop had a split left behind
        stale = dict.fromkeys(["precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "ece", "roc_auc_lo",
                               "roc_auc_hi"], 0.5)
        store.replace_metrics(con, "shop", "all", "tfidf-lr", {
            **stale, "n": 40, "accuracy": STALE, "accuracy_lo": 0.05, "accuracy_hi": 0.2,
            "tn": 1, "fp": 19, "fn": 20, "tp": 0}, pd.DataFrame(columns=["curve", "x", "y", "threshold"]))
    store.publish(db)
    return db


def read_view(db: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(store.view_path(db)), read_only=True) as con:
        return con.execute(sql).df()


def expected_matrix(db: Path, metric: str) -> dict:
    """(model, corpus) -> (split, n, value, lo, hi) straight from the metrics table: per corpus its test
    split when it has one, else 'all'; None where that model has no metrics on that split."""
    metrics = read_view(db, "SELECT * FROM metrics")
    models = set(metrics["model"]) | set(read_view(db, "SELECT model FROM models")["model"])
    out = {}
    for corpus, rows in metrics.groupby("corpus"):
        split = "test" if (rows["split"] == "test").any() else "all" if (rows["split"] == "all").any() else None
        if split is None:
            continue
        for model in models:
            hit = rows[(rows["split"] == split) & (rows["model"] == model)]
            out[model, corpus] = None if hit.empty else (
                split, int(hit["n"].iloc[0]), *(hit[c].iloc[0] for c in (metric, f"{metric}_lo", f"{metric}_hi")))
    return out


def matrix_chart(at: AppTest) -> pd.DataFrame:
    """The data behind the Overview's trained-on x evaluated-on heatmap, as the browser receives it."""
    charts = [c for c in at.get("vega_lite_chart") if '"evaluated on"' in c.proto.spec]
    assert len(charts) == 1
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in charts[0].proto.datasets]
    return next(f for f in frames if {"model", "corpus", "value"} <= set(f.columns))


def same(a, b) -> bool:
    return (a is None or (isinstance(a, float) and math.isnan(a))) == (b is None or pd.isna(b)) and (
        a is None or pd.isna(b) or abs(a - b) < 1e-12)


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_overview_cross_corpus_matrix_equals_the_metrics(cross_db, monkeypatch, metric):
    at = open_app(cross_db, monkeypatch, "overview")
    if metric != "accuracy":
        at.segmented_control(key="xc_metric").set_value(metric).run()
        assert not at.exception
    expected = expected_matrix(cross_db, metric)
    provenance = read_view(cross_db, "SELECT model, trained_on FROM models").set_index("model")["trained_on"]
    evaluated = {m: {c for (m2, c), v in expected.items() if m2 == m and v} for m in provenance.index}
    learnt = {provenance[m] for m in evaluated if len(evaluated[m]) >= 2 and pd.notna(provenance[m])}
    assert len(learnt) >= 2  # the fixture: two models that learnt apart, each evaluated on two corpora

    cells = matrix_chart(at).set_index(["model", "corpus"])
    assert set(cells.index) == set(expected)
    for (model, corpus), want in expected.items():
        got = cells.loc[(model, corpus)]
        if want is None:  # never evaluated there: an empty cell
            assert pd.isna(got["n"]) and pd.isna(got["value"]) and got["text"] == "", (model, corpus)
            continue
        split, n, value, lo, hi = want
        assert pd.notna(got["n"]) and (got["split"], int(got["n"])) == (split, n), (model, corpus)
        assert same(value, got["value"]) and got["text"] == (f"{value:.3f}" if pd.notna(value) else "n/a")
        assert got["interval"] == (f"{lo:.3f} - {hi:.3f}" if pd.notna(lo) else "n/a")
        assert bool(got["diagonal"]) == (provenance.get(model) == corpus), (model, corpus)
    assert cells.loc[("tfidf-lr", "shop"), "split"] == "test" and cells["value"].ne(STALE).all()
    assert cells.loc[("shop-lr", "shop"), "diagonal"] and cells["diagonal"].sum() == 1  # imdb: no column
    assert pd.isna(cells.loc[("vader", "shop"), "n"])

    table = frames(at)[-1].set_index("model")  # the same matrix as a table, one column per corpus (split)
    for (model, corpus), want in expected.items():
        column = f"{corpus} ({cells.loc[(model, corpus), 'split']})"
        assert same(want[2] if want else None, table.loc[model, column]), (model, column)
    hint = "\n".join(c.value for c in at.code)
    assert "python -m jobs.score --corpus shop --split test --models vader\npython -m jobs.evaluate\n" in hint


def test_every_list_of_models_says_where_each_learnt(cross_db, monkeypatch):
    models = read_view(cross_db, "SELECT model, trained_on, train_rows FROM models").set_index("model")
    assert models.loc["shop-lr", "trained_on"] == "shop" and models.loc["tfidf-lr", "trained_on"] == "imdb"

    def check(table: pd.DataFrame, names: set[str]) -> None:
        table = table.set_index("model")
        assert names <= set(table.index)
        for m in names:
            if pd.isna(models.loc[m, "trained_on"]):  # vader: a lexicon learns from nothing
                assert table.loc[m, "trained_on"] == data.LEXICON and table.loc[m, "train_rows"] == 0
            else:
                assert table.loc[m, "trained_on"] == models.loc[m, "trained_on"]
                assert table.loc[m, "train_rows"] == models.loc[m, "train_rows"]

    at = open_app(cross_db, monkeypatch, "overview")
    assert at.sidebar.selectbox(key="corpus").value == "sample"
    check(frames(at)[1], {"tfidf-lr", "shop-lr", "vader"})  # the leaderboard
    rows = set(matrix_chart(at)["row"])
    assert f"shop-lr\ntrained on shop, {models.loc['shop-lr', 'train_rows']:,} reviews" in rows
    assert f"tfidf-lr\ntrained on imdb, {models.loc['tfidf-lr', 'train_rows']:,} reviews" in rows
    at.switch_page("views/training.py").run()
    assert not at.exception
    check(frames(at)[0], {"tfidf-lr", "shop-lr", "vader"})
    assert frames(at)[0].set_index("model").loc["shop-lr", "train_classes"].startswith("negative ")


def test_a_view_of_another_schema_version_is_refused_until_a_job_republishes_it(cross_db, tmp_path, monkeypatch):
    """No read keeps a branch for older files: a view published by an older version says so in one line."""
    db = tmp_path / "reviews.duckdb"
    store.texts.copy_database(cross_db, db)
    shutil.copyfile(store.view_path(cross_db), store.view_path(db))
    with duckdb.connect(str(store.view_path(db))) as con:
        con.execute("DROP TABLE schema_info")  # as published before the version was recorded
        con.execute("ALTER TABLE models DROP COLUMN trained_on")
    at = open_app(db, monkeypatch)
    assert "published by an older version" in at.warning[0].value and "re-run any job" in at.warning[0].value
    assert len(at.code) == 0  # not "nothing to show yet": the view holds results, one job shows them
    assert evaluate.main(["--db", str(db), "--bootstrap", "0"]) == 0  # any job republishes the view
    at = open_app(db, monkeypatch, "overview")
    assert frames(at)[1].set_index("model").loc["tfidf-lr", "trained_on"] == "imdb"
