"""Explanations and drivers. Every model kind's ``explain`` on real IMDB reviews (the session's trained
tfidf-lr, VADER; tiny neural networks on a toy set), checked against what it claims (weights that add up to
P(text) - P(empty), spans that are words of the text, the model's own P), against leave-one-word-out
occlusion, and by the deletion test; the Reviews page's highlights; the Drivers page's counts and ranking."""

from __future__ import annotations

import math
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.drivers import log_odds, term_counts
from core.explain import deletion_test, occlusion, without
from core.models import load_model, model_class
from core.store.summaries import FieldFilter
from dashboard import data
from tests.helpers import HOME, HOSTILE, JOIN_TEXTS, q


@pytest.fixture(scope="module")
def reviews(scored_db) -> list[str]:
    rows = q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'sample' ORDER BY source_row LIMIT 40")
    return [t for (t,) in rows]


@pytest.mark.parametrize("name", ["tfidf-lr", "vader"])
def test_weights_are_words_of_the_text_and_add_up_to_the_models_p(scored_db, reviews, name):
    model = load_model(name, scored_db.models_dir)
    texts = [*reviews, *HOSTILE, ""]
    explanations = model.explain(texts)
    p = model.predict_proba(texts)
    for text, ex, want in zip(texts, explanations, p, strict=True):
        assert ex.p == pytest.approx(want, abs=1e-9)
        assert sum(w for *_, w in ex.spans) == pytest.approx(ex.p - ex.base, abs=1e-9)
        for start, end, weight in ex.spans:
            piece = text[start:end]  # a word (or one of VADER's emoticons), never cut from a longer word
            assert piece and not any(c.isspace() for c in piece)
            assert not (text[start - 1:start].isalnum() and piece[0].isalnum()) and \
                not (text[end:end + 1].isalnum() and piece[-1].isalnum())
            assert weight != 0
    assert sum(len(ex.spans) for ex in explanations[: len(reviews)]) > 20 * len(reviews)  # long reviews: many words
    assert explanations[-1].spans == [] and explanations[-1].p == pytest.approx(explanations[-1].base)


def test_tfidf_lr_reads_praise_as_positive_and_negation_as_it_learnt(scored_db):
    model = load_model("tfidf-lr", scored_db.models_dir)
    text = "A brilliant, moving film with superb acting. The worst part was the awful, boring ending."
    ex = model.explain([text])[0]
    weight = {text[s:e].lower(): w for s, e, w in ex.spans}
    assert weight["brilliant"] > 0 and weight["superb"] > 0
    assert weight["worst"] < 0 and weight["awful"] < 0 and weight["boring"] < 0
    assert [text[s:e] for s, e, _ in ex.top(2, 1.0)] and all(w > 0 for *_, w in ex.top(3, 1.0))


def test_vader_applies_its_negation_rule():
    model = load_model("vader")
    plain, negated = model.explain(["The film was good.", "The film was not good."])
    assert next(w for *_, w in plain.spans) > 0
    assert next(w for *_, w in negated.spans) < 0  # 'good' after 'not' counts against


def test_occlusion_agrees_in_sign_with_the_exact_explanation(scored_db, reviews):
    """Leave-one-word-out, the model-agnostic check, finds the same direction for tfidf-lr's strongest words."""
    model = load_model("tfidf-lr", scored_db.models_dir)
    for text in reviews[:5]:
        exact = model.explain([text])[0]
        occluded = {(s, e): w for s, e, w in occlusion(model.predict_proba, [text])[0].spans}
        strongest = sorted(exact.spans, key=lambda s: -abs(s[2]))[:5]
        agree = [np.sign(w) == np.sign(occluded[(s, e)]) for s, e, w in strongest if (s, e) in occluded]
        assert len(agree) >= 4 and sum(agree) >= len(agree) - 1


@pytest.mark.parametrize("name", ["tfidf-lr", "vader"])
def test_the_deletion_test_finds_explanations_faithful_and_random_deletions_weak(scored_db, reviews, name):
    model = load_model(name, scored_db.models_dir)
    result = deletion_test(model.predict_proba, model.explain(reviews), reviews, k=5)
    assert result.n == len(reviews) and result.top_shift > 2 * result.random_shift
    assert without("one two three", [(4, 8)]) == "one three"


TOY_POS = ["a wonderful film, truly great acting", "I loved it, brilliant and moving", "superb, a great story"]
TOY_NEG = ["an awful, boring film", "terrible acting, a waste of time", "dull and bad, I hated it"]
TOY = pd.DataFrame({"text": (TOY_POS + TOY_NEG) * 4, "y": ([1] * 3 + [0] * 3) * 4})


@pytest.mark.parametrize("kind", ["lstm", "bert", "bitbert"])
def test_integrated_gradients_add_up_within_their_reported_error_on_words_of_the_review(kind):
    """The neural kinds (tiny networks trained on a toy set): IG's weights sum to P - P(baseline) within the
    reported convergence error (small: BitLinear BERT's rounded activations pass their gradient straight
    through, as in training), P is the model's own, the spans are whole words, and the words the toy set
    taught as positive weigh toward positive."""
    cls = model_class(kind)
    overrides = ({"vocab_size": 200, "glove": False, "embed_dim": 16, "hidden": 8, "max_len": 32, "epochs": 8,
                  "lr": 2e-2, "min_freq": 1,
                  "train_rows": None, "val_rows": None} if kind == "lstm" else
                 {"layers": 1, "max_len": 32, "epochs": 4, "batch_size": 4, "lr": 1e-3, "warmup": 0.0,
                  "train_rows": None, "val_rows": None})
    model = cls.fit(TOY, TOY, "quick", overrides, progress=lambda _: None)[0]
    texts = ["A wonderful, brilliant film.", "An awful, boring waste of time.", HOSTILE[0]]
    explanations = model.explain(texts, n_steps=24)
    p = model.predict_proba(texts)
    for text, ex, want in zip(texts, explanations, p, strict=True):
        assert ex.p == pytest.approx(want, abs=1e-3)  # bitbert's integer kernels vs its float arithmetic
        total = sum(w for *_, w in ex.spans)
        assert abs(total - (ex.p - ex.base)) <= ex.delta + 1e-4
        if kind == "bitbert":  # activations rounded along the path: the page says so
            assert "straight-through" in " ".join(ex.notes)
        assert ex.delta < 0.1 * abs(ex.p - ex.base) + 1e-3  # more steps were taken where the path is steep
        for start, end, _ in ex.spans:
            piece = text[start:end]
            assert piece.strip() == piece and piece
    weight = {texts[0][s:e].lower(): w for s, e, w in explanations[0].spans}
    assert weight["wonderful"] > 0 and weight["brilliant"] > 0
    toy = TOY_POS + TOY_NEG  # the deletion test: the 2 words IG ranks highest move P further than 2 random ones
    result = deletion_test(model.predict_proba, model.explain(toy, n_steps=24), toy, k=2)
    assert result.n == len(toy) and result.top_shift > result.random_shift


def test_the_reviews_page_explains_the_chosen_review_and_keeps_hostile_text_inert(scored_db, monkeypatch):
    """Reviews page: the selected review (a hostile one, found by a search) is drawn with each chosen model's
    words highlighted; its markup arrives escaped, never as elements."""
    monkeypatch.setenv("SENTIMENT_DB", str(scored_db.db))
    at = AppTest.from_file(HOME, default_timeout=120)
    at.run()
    at.sidebar.selectbox(key="corpus").set_value("sample").run()
    at.switch_page("views/reviews.py").run()
    at.text_input(key="rv_search").set_value("**bold**").run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="rv_explain").set_value(["tfidf-lr", "vader"]).run()
    assert not at.exception, [e.value for e in at.exception]
    drawn = [e.proto.body for e in at.get("html")]
    assert len(drawn) == 2  # one per model, side by side
    for body in drawn:
        text = re.sub(r'</?(span|div)( style="[^"<>]*"( title="[^"<>]*")?)?>', "", body)  # our own tags only
        assert text == "**bold** &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert any("rgba(" in body for body in drawn)  # at least one word of it is in a model's vocabulary
    captions = " ".join(str(c.value) for c in at.caption)
    assert "exact (coefficient x tf-idf)" in captions and "VADER's valences" in captions


def test_the_explanation_benchmark_prints_a_row_per_model(scored_db, capsys):
    from jobs import bench_explain

    assert bench_explain.main(["--db", str(scored_db.db), "--models-dir", str(scored_db.models_dir), "--models",
                               "tfidf-lr,vader", "--corpus", "sample", "--split", "all", "--n", "30"]) == 2
    assert bench_explain.main(["--db", str(scored_db.db), "--models-dir", str(scored_db.models_dir), "--models",
                               "tfidf-lr,vader", "--n", "30"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ") for line in out if line.startswith(("| tfidf", "| vader"))]
    assert [r[0] for r in rows] == ["| tfidf-lr", "| vader"]
    for r in rows:
        top, random, ratio = float(r[3]), float(r[4]), float(r[5])
        assert r[2] == "30" and top > random and ratio == pytest.approx(top / random, rel=0.05)


def test_drivers_count_real_reviews_and_rank_negative_words_first(scored_db, monkeypatch):
    """The Drivers page on the sample corpus (303 reviews: the whole of it is the sample): a term's counts
    equal a plain count of the word in those reviews, and the ranking puts 'bad' on the negative side and
    'great' on the positive side; the page renders, and a term's reviews come with the term highlighted."""
    view = store.view_path(scored_db.db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    table, sizes = data.drivers(src, "sample", "all", "tfidf-lr", data.Group(side="negative"),
                                data.Group(side="positive"), "label")
    texts = q(scored_db.db, f"SELECT text, label FROM reviews{JOIN_TEXTS} WHERE corpus = 'sample'")
    assert (sizes["a"], sizes["b"]) == tuple(sum(label == s for _, label in texts) for s in ("negative", "positive"))
    by_term = table.set_index("term")
    for word in ("bad", "great"):
        negative = sum(len(re.findall(rf"\b{word}\b", t.lower())) for t, label in texts if label == "negative")
        assert by_term.loc[word, "count_a"] == negative
    assert by_term.loc["bad", "z"] > 1 and by_term.loc["great", "z"] < -1
    assert (table["lo"] <= table["delta"]).all() and (table["delta"] <= table["hi"]).all()

    monkeypatch.setenv("SENTIMENT_DB", str(scored_db.db))
    at = AppTest.from_file(HOME, default_timeout=120)
    at.run()
    at.sidebar.selectbox(key="corpus").set_value("sample").run()
    at.switch_page("views/drivers.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="dr_term").set_value("bad").run()
    assert not at.exception, [e.value for e in at.exception]
    drawn = [e.proto.body for e in at.get("html")]
    assert drawn and all(re.search(r">bad<", body, re.IGNORECASE) for body in drawn)


@pytest.mark.parametrize("page, key", [("disagreements", "dis_explain"), ("confusion", "cm_explain")])
def test_the_disagreements_and_a_confusion_cell_explain_the_review_they_show(scored_db, monkeypatch, page, key):
    """The first review of the page's table is read whole and explained: on the Disagreements page by every
    chosen model side by side, in a confusion cell by the cell's model."""
    monkeypatch.setenv("SENTIMENT_DB", str(scored_db.db))
    at = AppTest.from_file(HOME, default_timeout=120)
    at.run()
    at.sidebar.selectbox(key="corpus").set_value("sample").run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    chosen = at.multiselect(key=key).value
    assert chosen == (["tfidf-lr", "vader"] if page == "disagreements" else [at.selectbox(key="cm_model").value])
    drawn = [e.proto.body for e in at.get("html")]
    assert len(drawn) == len(chosen) and all("<span style=" in body for body in drawn)


def test_the_explain_command_prints_a_reviews_weights_and_a_corpus_drivers(scored_db, tmp_path, capsys):
    from core.errors import InputError
    from jobs import explain

    common = ["--db", str(scored_db.db), "--models-dir", str(scored_db.models_dir)]
    assert explain.main([*common, "--corpus", "sample", "--review-id", "h2", "--models", "tfidf-lr,vader"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("h2 · label negative") and HOSTILE[2] in out  # printed as it is, to a terminal
    assert "tfidf-lr: P(positive)" in out and "vader: P(positive)" in out and "toward negative" in out
    csv = tmp_path / "drivers.csv"
    assert explain.main([*common, "--corpus", "sample", "--drivers", "--by", "label", "--csv", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert "| bad |" in capsys.readouterr().out and table.set_index("term").loc["bad", "z"] > 1
    with pytest.raises(InputError, match="no review 'nope'"):
        explain.main([*common, "--corpus", "sample", "--review-id", "nope"])
    with pytest.raises(InputError, match="needs --model"):
        explain.main([*common, "--corpus", "sample", "--drivers"])


def test_log_odds_equal_the_formula_computed_term_by_term():
    """Monroe, Colaresi and Quinn (2008), eq. 16-20, written out per term on a small corpus: the prior of a
    term is its share of all counts times the total count."""
    a_texts = ["awful plot, awful acting", "boring and awful", "not good at all", "boring boring film"]
    b_texts = ["great acting", "great plot and great film", "good fun, not boring", "a good film"]
    a, b = term_counts(a_texts, bigrams=False), term_counts(b_texts, bigrams=False)
    table = log_odds(a, b, min_count=1).set_index("term")
    na, nb = a.sum(), b.sum()
    for term in set(a.index) | set(b.index):
        ya, yb = a.get(term, 0), b.get(term, 0)
        alpha = (ya + yb) / (na + nb) * (na + nb)  # alpha_0 = na + nb: the prior weighs as much as the data
        alpha0 = na + nb
        delta = math.log((ya + alpha) / (na + alpha0 - ya - alpha)) - math.log((yb + alpha) / (nb + alpha0 - yb - alpha))
        sd = math.sqrt(1 / (ya + alpha) + 1 / (yb + alpha))
        row = table.loc[term]
        assert (row["count_a"], row["count_b"]) == (ya, yb)
        assert row["delta"] == pytest.approx(delta) and row["z"] == pytest.approx(delta / sd)
        assert row["lo"] == pytest.approx(delta - 1.96 * sd) and row["hi"] == pytest.approx(delta + 1.96 * sd)
    assert table.index[0] == "awful" and table.index[-1] == "great"


def test_drivers_compare_a_slice_against_the_rest_and_a_period_against_an_earlier_one(drugs_db, capsys):
    """On the drug reviews (test split, every review counted: the groups are smaller than the samples): the
    negative reviews of one condition against those of every other, and one year against the one before,
    each term's counts equal a count over exactly those reviews."""
    view = store.view_path(drugs_db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    rows = q(drugs_db, """SELECT t.text, c.text_value, d.time_value, p.p_positive FROM reviews r
        JOIN texts t USING (corpus, rid, review_id)
        LEFT JOIN review_fields c ON c.review_id = r.review_id AND c.field = 'condition'
        JOIN review_fields d ON d.review_id = r.review_id AND d.field = 'date'
        JOIN predictions p ON p.review_id = r.review_id AND p.model = 'tfidf-lr' WHERE r.split = 'test'""")
    negative = [(text, condition, day) for text, condition, day, p in rows if p < 0.5]
    cut = FieldFilter("condition", "categorical", values=("Birth Control",))
    table, sizes = data.drivers(src, "drugs", "test", "tfidf-lr", data.Group((cut,), side="negative"),
                                data.Group(outside=cut, side="negative"))
    inside = [t for t, c, _ in negative if c == "Birth Control"]
    rest = [t for t, c, _ in negative if c != "Birth Control"]
    assert (sizes["a"], sizes["b"]) == (len(inside), len(rest)) and inside and rest
    by_term = table.set_index("term")
    for term in ("period", "birth control"):
        assert by_term.loc[term, "count_a"] == term_counts(inside).get(term, 0)
        assert by_term.loc[term, "count_b"] == term_counts(rest).get(term, 0)
        assert by_term.loc[term, "z"] > 0  # typical of the condition
    from core.errors import InputError
    from jobs import explain

    common = ["--db", str(drugs_db), "--corpus", "drugs", "--split", "test", "--drivers", "--model", "tfidf-lr"]
    assert explain.main([*common, "--slice", "condition=Birth Control", "--top", "40"]) == 0
    out = capsys.readouterr().out
    first, rest = out.split("typical of the rest")
    assert "typical of condition=Birth Control" in first and "| birth control |" in first
    with pytest.raises(InputError, match="kept column of drugs: drugName, condition"):
        explain.main([*common, "--slice", "colour=red"])
    year = data.Group((FieldFilter("date", "datetime", lo="2016-01-01", hi="2017-01-01"),), side="negative")
    before = data.Group((FieldFilter("date", "datetime", lo="2015-01-01", hi="2016-01-01"),), side="negative")
    table, sizes = data.drivers(src, "drugs", "test", "tfidf-lr", year, before)
    assert (sizes["a"], sizes["b"]) == tuple(sum(d.year == y for *_, d in negative) for y in (2016, 2015))
    in_2016 = term_counts([t for t, _, d in negative if d.year == 2016])
    assert dict(table.set_index("term")["count_a"]) == {t: in_2016.get(t, 0) for t in table["term"]}


def test_a_terms_negative_share_over_time_counts_the_reviews_that_use_it(drugs_db):
    view = store.view_path(drugs_db)
    src = data.Source(str(view), view.stat().st_mtime_ns)
    trend, n = data.term_trend(src, "drugs", "test", "tfidf-lr", "side effects", "date", "year")
    rows = q(drugs_db, """SELECT t.text, year(d.time_value), p.p_positive < 0.5 FROM reviews r
        JOIN texts t USING (corpus, rid, review_id)
        JOIN review_fields d ON d.review_id = r.review_id AND d.field = 'date'
        JOIN predictions p ON p.review_id = r.review_id AND p.model = 'tfidf-lr' WHERE r.split = 'test'""")
    assert n == len(rows)
    for period in trend.itertuples():
        these = [(text, neg) for text, y, neg in rows if y == period.period.year]
        using = [neg for text, neg in these if re.search(r"(?<![\w'])side[^\w']+effects(?![\w'])", text.lower())]
        assert (period.reviews, period.term_reviews, period.term_negative) == (len(these), len(using), sum(using))
        if using:
            assert period.term_share_lo <= period.term_share == sum(using) / len(using) <= period.term_share_hi
    assert trend["term_reviews"].sum() > 10


def test_the_drivers_page_compares_a_condition_with_the_rest(drugs_db, monkeypatch):
    monkeypatch.setenv("SENTIMENT_DB", str(drugs_db))
    at = AppTest.from_file(HOME, default_timeout=120)
    at.run()
    at.switch_page("views/drivers.py").run()
    at.segmented_control(key="dr_compare").set_value("slice").run()
    at.selectbox(key="dr_field").set_value("condition").run()
    at.selectbox(key="dr_value").set_value("Birth Control").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown][:2] == ["**Typical of condition = Birth Control**", "**Typical of the rest**"]
    assert "birth control" in at.dataframe[0].value["term"].tolist()
    at.segmented_control(key="dr_compare").set_value("period").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.markdown[0].value == "**Typical of 2017**" and at.markdown[1].value == "**Typical of 2016**"


def test_a_sample_comes_from_the_pool_and_a_narrow_filter_reads_every_matching_review(drugs_db, tmp_path,
                                                                                        monkeypatch):
    """With a pool of 100 of the 979 drug reviews: a broad sample is the first matches of the pool in hash
    order, with each review's own text; a filter too narrow for the pool draws from every matching review."""
    from core.store import review_rows, summaries

    db = tmp_path / "drugs.duckdb"
    store.texts.copy_database(drugs_db, db)
    monkeypatch.setattr(summaries, "POOL", 100)
    monkeypatch.setattr(review_rows, "POOL_ENOUGH", 20)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM summary_state")  # summaries out of date: the publish rebuilds them
    store.publish(db)
    view = store.view_path(db)
    texts = dict(q(view, "SELECT review_id, text FROM texts"))
    pool = q(view, "SELECT p.rid, p.h, r.review_id FROM summary_pool p JOIN summary_rows r USING (rid) "
                   "WHERE r.model = 'tfidf-lr' ORDER BY p.h")
    assert len(pool) == 100 and [h for _, h, _ in pool] == sorted(h for _, h, _ in pool)
    with store.connect(view, read_only=True) as con:
        broad = review_rows.sample_texts(con, "drugs", "test", "tfidf-lr", 30)
        cut = FieldFilter("condition", "categorical", values=("Birth Control",))
        narrow = review_rows.sample_texts(con, "drugs", "test", "tfidf-lr", 5000, where=(cut,), side="negative")
    pooled_test = [rid for rid, _, review_id in pool if review_id in set(broad["review_id"])]
    assert len(broad) == 30 and len(pooled_test) == 30  # every one from the pool
    assert all(texts[r] == t for r, t in zip(broad["review_id"], broad["text"], strict=True))
    exact = {r for (r,) in q(view, """SELECT p.review_id FROM predictions p JOIN review_fields f USING (review_id)
        JOIN reviews v USING (review_id) WHERE p.model = 'tfidf-lr' AND p.p_positive < 0.5 AND v.split = 'test'
        AND f.field = 'condition' AND f.text_value = 'Birth Control'""")}
    assert set(narrow["review_id"]) == exact and len(exact) > 20  # the pool held too few: every match, live
    assert all(texts[r] == t for r, t in zip(narrow["review_id"], narrow["text"], strict=True))
