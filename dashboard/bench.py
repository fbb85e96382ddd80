"""Time every dashboard page's reads on a database: ``python -m dashboard.bench --db DB [--repeat N]``
(``python -m jobs.bench_dashboard`` builds a big one and runs this). Prints seconds per page on first view
(every cache cleared) and per interaction (after its page's first view, as in the app), then the same under
a sidebar filter on a categorical kept column's largest value.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from core.store.summaries import FieldFilter


def page_calls(data, slicing, src, where=()) -> dict[str, tuple[str | None, list]]:
    """What each page queries on first view, and on its main interactions (name -> (page it happens on,
    calls)); the default selection: the first corpus and split, every model, the sidebar's column filters
    ``where``."""
    corpus = data.corpora(src)["corpus"].iloc[0]
    split = data.splits(src, corpus)[0]
    models = tuple(data.models(src, corpus))
    first = models[0]
    scope = (src, corpus, split, models)
    w = {"where": where}
    base = data.ReviewFilter(corpus, split, first, where=where)
    kinds = dict(zip(*[slicing.sliceable(src, corpus)[c] for c in ("field", "kind")], strict=True))
    cat, day = (next((f for f, k in kinds.items() if k == kind), None) for kind in ("categorical", "datetime"))

    def search(term: str, steps: int | None) -> data.ReviewFilter:
        return base._replace(search=term, search_steps=steps)

    def cut(field: str):  # the largest slice of a column
        value = slicing.slices(*scope, field, kinds[field], 10, where)["value"].iloc[0]
        return slicing.slice_filter(src, corpus, field, kinds[field], value)

    def year(field: str, back: int):  # the back-th last year of a date column
        last = slicing.over_time(*scope[:3], (first,), field, "year", where)["period"].iloc[-back]
        lo, hi = data.period_bounds(last, "year")
        return FieldFilter(field, "datetime", lo=lo, hi=hi)

    def slice_reviews():
        value = slicing.slices(*scope, cat, kinds[cat], 10, where)["value"].iloc[0]
        flt = base._replace(where=(*where, slicing.slice_filter(src, corpus, cat, kinds[cat], value)))
        data.review_page(src, flt, data.TEXT_ROWS, 0)

    pages = {
        "sidebar (every page)": (None, [lambda: data.summary(src), lambda: data.corpora(src),
                                        lambda: data.splits(src, corpus), lambda: data.models(src, corpus)]),
        "1 Overview": (None, [lambda: data.corpora(src), lambda: data.rejects(src, corpus),
                              lambda: data.leaderboard(*scope, **w), lambda: data.labelled_count(src, corpus, split, **w)]),
        "2 Distributions": (None, [lambda: data.shares(*scope, "none", **w), lambda: data.histogram(*scope, "none", **w)]),
        "  split by label": ("2 Distributions", [lambda: data.shares(*scope, "label", **w),
                                                 lambda: data.histogram(*scope, "label", **w)]),
        "  split by length": ("2 Distributions", [lambda: data.shares(*scope, "length", **w),
                                                  lambda: data.histogram(*scope, "length", **w)]),
        "3 Confusion matrices": (None, [lambda: data.labelled_count(src, corpus, split, **w),
                                        lambda: data.confusion(*scope, **w),
                                        lambda: data.cell_reviews(src, corpus, split, first, "fp", **w)]),
        "  another cell": ("3 Confusion matrices", [lambda: data.cell_reviews(src, corpus, split, first, "tn", **w)]),
        "4 ROC and PR": (None, [lambda: data.labelled_count(src, corpus, split, **w),
                                lambda: data.confusion_at(*scope, 0.5, **w), lambda: data.roc_pr(*scope, **w),
                                lambda: data.aucs(*scope, **w), lambda: data.calibration(*scope, **w)]),
        "  threshold slider moved": ("4 ROC and PR", [lambda: data.confusion_at(*scope, 0.73, **w)]),
        "5 Disagreements": (None, [lambda: data.disagreement_counts(*scope, **w), lambda: data.agreement(*scope, **w),
                                   lambda: data.disagreements(*scope, False, **w)]),
        "  every model contradicts": ("5 Disagreements", [lambda: data.disagreements(*scope, True, **w)]),
        "6 Reviews": (None, [lambda: data.length_range(src, corpus), lambda: data.review_page(src, base, 50, 0)]),
        "  filters": ("6 Reviews", [lambda: data.review_page(
            src, base._replace(predicted="negative", label="positive", correct=False, p_min=0.1), 50, 0)]),
        "  text search (its first step)": ("6 Reviews", [lambda: data.review_page(src, search("Wonderful", 1), 50, 0)]),
        "  search further (the second step)": ("  text search (its first step)", [
            lambda: data.review_page(src, search("Wonderful", 2), 50, 0)]),
        "  text search, no match": ("6 Reviews", [lambda: data.review_page(src, search("zqxj onerror", 1), 50, 0)]),
        "  text search of every review at once": ("6 Reviews", [
            lambda: data.review_page(src, search("Wonderful", None), 50, 0)]),
        "  page 1,000": ("6 Reviews", [lambda: data.review_page(src, base, 50, 50 * 999)]),
        "  CSV download (100k rows, on click)": ("6 Reviews", [lambda: data.review_csv(src, base)]),
        "11 Training": (None, [lambda: data.training_log(src), lambda: data.trained_models(src)]),
        "7 Drivers (negative against positive)": (None, [
            lambda: data.labelled_count(src, corpus, split, **w), lambda: slicing.sliceable(src, corpus),
            lambda: data.drivers(src, corpus, split, first, data.Group(where, side="negative"),
                                 data.Group(where, side="positive"))]),
        "  a term's reviews": ("7 Drivers (negative against positive)", [
            lambda: data.review_page(src, search("awful", 1)._replace(predicted="negative"), 40, 0)]),
    }
    other = next((f for f, k in kinds.items() if k == "categorical" and f not in {w.field for w in where}), None)
    if other:  # a column the sidebar does not filter on: its largest slice under the filter
        pages[f"  a slice ({other}) against the rest"] = ("7 Drivers (negative against positive)", [
            lambda: data.drivers(src, corpus, split, first, data.Group((*where, cut(other)), side="negative"),
                                 data.Group(where, outside=cut(other), side="negative"))])
    if day:
        pages["  a year against the year before"] = ("7 Drivers (negative against positive)", [lambda: data.drivers(
            src, corpus, split, first, data.Group((*where, year(day, 1)), side="negative"),
            data.Group((*where, year(day, 2)), side="negative"))])
        pages["  a term over time (per month)"] = ("7 Drivers (negative against positive)", [
            lambda: data.term_trend(src, corpus, split, first, "awful", day, "month", where)])
    if cat:
        pages.update({
            "8 Slices (top 10 of a category)": (None, [lambda: slicing.sliceable(src, corpus),
                                                       lambda: slicing.slices(*scope, cat, kinds[cat], 10, where)]),
            "  top 30": ("8 Slices (top 10 of a category)", [lambda: slicing.slices(*scope, cat, kinds[cat], 30, where)]),
            **{f"  column {f}": ("8 Slices (top 10 of a category)", [
                lambda f=f: slicing.slices(*scope, f, kinds[f], 10, where)]) for f in kinds if f != cat},
            "  click a slice: its reviews": ("8 Slices (top 10 of a category)", [slice_reviews]),
        })
    if day:
        pages.update({
            "9 Over time (per month)": (None, [lambda: slicing.fields(src, corpus),
                                               lambda: slicing.over_time(*scope, day, "month", where)]),
            "  per week": ("9 Over time (per month)", [lambda: slicing.over_time(*scope, day, "week", where)]),
            "  per day": ("9 Over time (per month)", [lambda: slicing.over_time(*scope, day, "day", where)]),
        })
    if kinds:
        pages["sidebar: column filters opened"] = (None, [
            lambda f=f, k=k: slicing.values(src, corpus, f, k) if k != "datetime" else slicing.bounds(src, corpus, f)
            for f, k in kinds.items()])
    pages["11 Training"] = pages.pop("11 Training")  # in the sidebar's order
    return pages


def time_pages(data, slicing, repeat: int, where=()) -> list[tuple[str, float]]:
    """A page's first view is timed with every cache cleared (sidebar excluded: it is cached across pages);
    an interaction is timed after its page's first view, with that page's results cached, as in the app."""
    src = data.source()
    calls = page_calls(data, slicing, src, where)
    results = []
    for name, (page, timed) in calls.items():
        runs = []
        for _ in range(repeat):
            data.clear_caches()
            for call in calls[page][1] if page else []:
                call()
            t = time.perf_counter()
            for call in timed:
                call()
            runs.append(time.perf_counter() - t)
        runs.sort()
        results.append((name, runs[len(runs) // 2]))
    return results


def time_try_it(chosen: tuple[str, ...]) -> tuple[float, float]:
    """Try it queries no database: load the page's default models (the trained ones among the sidebar's
    ``chosen``, else every trained one; once, then cached) and score one text."""
    from core.models import available_models, load_model

    trained = available_models()
    names = [m for m in chosen if m in trained] or trained
    t = time.perf_counter()
    loaded = [load_model(n) for n in names]
    load = time.perf_counter() - t
    t = time.perf_counter()
    for m in loaded:
        m.predict_proba(["The plot was thin, but the acting was wonderful."])
    return load, time.perf_counter() - t


def time_explain(data, src) -> list[tuple[str, float, float]]:
    """Why, per trained model: (name, seconds to load it, seconds to explain one review of the corpus as the
    pages do: its text read, the explanation computed, no cache). The review is the first of the Reviews
    page, so every model explains the same text."""
    from core.models import available_models, load_model

    corpus = data.corpora(src)["corpus"].iloc[0]
    split = data.splits(src, corpus)[0]
    first = data.models(src, corpus)[0]
    out = []
    for name in available_models():
        data.clear_caches()
        t = time.perf_counter()
        model = load_model(name)
        loaded = time.perf_counter() - t
        t = time.perf_counter()
        _, rows = data.review_page(src, data.ReviewFilter(corpus, split, first), data.TEXT_ROWS, 0)
        model.explain([rows["text"].iloc[0]])
        out.append((name, loaded, time.perf_counter() - t))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, required=True, help="database whose published view is timed")
    p.add_argument("--repeat", type=int, default=1, help="cold runs per page; the table shows the median")
    args = p.parse_args(argv)
    os.environ["SENTIMENT_DB"] = str(args.db)
    import streamlit.logger

    streamlit.logger.set_log_level("error")  # "no runtime found" warnings: caching works without one
    from dashboard import data, slicing

    summary = data.summary(data.source())
    print(f"\n{summary['reviews']:,} reviews, {summary['predictions']:,} predictions, {os.cpu_count()} CPU cores; "
          f"seconds in dashboard.data, median of {args.repeat}: a page's first view with every cache cleared, "
          f"an interaction (indented) after its page's first view\n")
    print(f"{'page / interaction':<42}{'seconds':>9}")
    print("-" * 51)
    src = data.source()
    corpus = data.corpora(src)["corpus"].iloc[0]
    kinds = dict(zip(*[slicing.sliceable(src, corpus)[c] for c in ("field", "kind")], strict=True))
    cat = next((f for f, k in kinds.items() if k == "categorical"), None)
    filters = {"": ()}
    if cat:  # the sidebar filters on the largest value of a categorical column: every page reads the rows
        top = slicing.values(src, corpus, cat, kinds[cat])["value"].iloc[0]
        filters[f"sidebar filter {cat} = {top}"] = (FieldFilter(cat, kinds[cat], values=(top,)),)
    for title, where in filters.items():
        if title:
            print(f"\n{title}:")
        for name, seconds in time_pages(data, slicing, args.repeat, where):
            print(f"{name:<42}{seconds:>9.3f}")
    load, predict = time_try_it(tuple(data.models(src, corpus)))
    print(f"{'10 Try it: load its models (first time)':<42}{load:>9.3f}")
    print(f"{'  score one text with them':<42}{predict:>9.3f}")
    print(f"\n{'Why: a review explained, per model':<42}{'load s':>9}{'explain s':>11}")
    for name, loaded, explained in time_explain(data, src):
        print(f"{'  ' + name:<42}{loaded:>9.3f}{explained:>11.3f}")
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} (other processes share the CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
