"""Every chart of the dashboard: functions that take a small, already aggregated DataFrame (from
``dashboard.data``) and return an Altair chart. No data access here."""

from __future__ import annotations

import altair as alt
import pandas as pd

SENTIMENT = alt.Scale(domain=["negative", "positive"], range=["#d1495b", "#2e86ab"])
MODELS = alt.Scale(scheme="tableau10")  # distinct hues: one per model
HEIGHT = 260


def _models_legend(title: str = "model", columns: int = 3) -> alt.Legend:
    return alt.Legend(title=title, orient="bottom", columns=columns, labelLimit=320)


def _two_lines(**axis) -> alt.Axis:
    """An axis whose labels (values with one newline) are drawn on two lines."""
    return alt.Axis(**{"labelExpr": "split(datum.label, '\\n')", "labelLimit": 360, **axis})


def accuracy_ci(df: pd.DataFrame) -> alt.Chart:
    """Accuracy with its 95% CI per model, each labelled with where it learnt (df: model, provenance,
    accuracy, accuracy_lo, accuracy_hi)."""
    df = df.dropna(subset=["accuracy"])
    df = df.assign(row=df["model"] + "\n" + df["provenance"])
    base = alt.Chart(df).encode(y=alt.Y("row:N", title=None, sort=df["row"].tolist(), axis=_two_lines()))
    bars = base.mark_rule(strokeWidth=3, color="#999").encode(
        x=alt.X("accuracy_lo:Q", title="accuracy (95% CI)", scale=alt.Scale(zero=False)), x2="accuracy_hi:Q")
    dots = base.mark_point(filled=True, size=90).encode(
        x="accuracy:Q", tooltip=["model", alt.Tooltip("provenance:N", title="where it learnt"),
                                 alt.Tooltip("accuracy:Q", format=".3f"),
                                 alt.Tooltip("accuracy_lo:Q", format=".3f"),
                                 alt.Tooltip("accuracy_hi:Q", format=".3f")])
    return (bars + dots).properties(height=alt.Step(40))


# Matrix column labels (the chart fills the page's width): level and cut short to about a column's width
# for a few corpora, slanted beyond; the tooltip has the whole name.
_LEVEL = {"labelAngle": 0, "labelLimit": 96}
_SLANTED = {"labelAngle": -35, "labelAlign": "left", "labelLimit": 180}


def cross_corpus(cells: pd.DataFrame, metric: str, title: str) -> alt.LayerChart:
    """Trained-on x evaluated-on heatmap of ``metric`` ('accuracy' | 'roc_auc', named ``title``): one row
    per model (its name, where it learnt and from how many reviews), one column per evaluated corpus (and
    the split read), the value printed in each cell. A bold outline marks the diagonal, the model on the
    corpus it was trained on; the other cells show how far it carries out of its domain. Grey cells: never
    evaluated there. (cells: data.cross_corpus)"""
    value, lo, hi = cells[metric], cells[f"{metric}_lo"], cells[f"{metric}_hi"]
    evaluated = cells["n"].notna()
    df = cells.assign(
        row=cells["model"] + "\n" + cells["provenance"],
        column=cells["corpus"] + "\n" + cells["split"].map({"test": "test split", "all": "all reviews"}),
        value=value,
        text=[f"{v:.3f}" if pd.notna(v) else ("n/a" if e else "") for v, e in zip(value, evaluated)],
        interval=[f"{a:.3f} - {b:.3f}" if pd.notna(a) and pd.notna(b) else "n/a" for a, b in zip(lo, hi)],
        status=["trained on this corpus" if d else "evaluated" if e else
                "not evaluated: score this split with the model, then run jobs.evaluate"
                for d, e in zip(cells["diagonal"], evaluated)],
    )
    rows, columns = df["row"].drop_duplicates().tolist(), df["column"].drop_duplicates().tolist()
    base = alt.Chart(df).encode(
        x=alt.X("column:N", title="evaluated on", sort=columns,
                axis=_two_lines(orient="top", labelFontSize=12, labelOverlap=False,
                                **(_LEVEL if len(columns) <= 6 else _SLANTED))),
        y=alt.Y("row:N", title=None, sort=rows, axis=_two_lines(labelFontSize=12, labelLimit=300)),
        tooltip=["model", alt.Tooltip("provenance:N", title="where it learnt"),
                 alt.Tooltip("corpus:N", title="evaluated on"), "split:N",
                 alt.Tooltip("n:Q", title="reviews (n)", format=","),
                 alt.Tooltip("value:Q", title=title, format=".3f"),
                 alt.Tooltip("interval:N", title="95% interval"), alt.Tooltip("status:N", title="cell")],
    )
    heat = base.transform_filter("isValid(datum.value)").mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("value:Q", title=title, legend=None,  # each cell prints its value
                        scale=alt.Scale(scheme="blues", domain=[0.5, 1], clamp=True)))
    blank = base.transform_filter("!isValid(datum.value)").mark_rect(
        fill="#f2f2f2", stroke="white", strokeWidth=2)
    diagonal = base.transform_filter("datum.diagonal").mark_rect(fill=None, stroke="#e67e22", strokeWidth=4)
    text = base.mark_text(fontSize=15).encode(
        text="text:N", color=alt.condition("datum.value > 0.8", alt.value("white"), alt.value("black")))
    own = base.transform_filter("datum.diagonal").mark_text(fontSize=11, dy=17, text="trained here").encode(
        color=alt.condition("datum.value > 0.8", alt.value("white"), alt.value("black")))
    unseen = base.transform_filter("!isValid(datum.n)").mark_text(
        fontSize=11, color="#777", text="not evaluated" if len(columns) <= 6 else "—")  # narrow cells: a dash
    return (heat + blank + diagonal + text + own + unseen).properties(height=alt.Step(52))


def shares(df: pd.DataFrame, by: str) -> alt.Chart:
    """Stacked share of predicted sentiment per model (df: model, group, predicted, n, share)."""
    chart = alt.Chart(df).mark_bar().encode(
        x=alt.X("share:Q", stack="normalize", axis=alt.Axis(format="%"), title="share of reviews"),
        y=alt.Y("model:N", title=None),
        color=alt.Color("predicted:N", scale=SENTIMENT, title="predicted"),
        tooltip=["model", "group", "predicted", alt.Tooltip("n:Q", format=","),
                 alt.Tooltip("share:Q", format=".1%")],
    )
    if by != "none":
        chart = chart.facet(row=alt.Row("group:N", title=None, header=alt.Header(labelAngle=0,
                                                                                 labelAlign="left")))
    return chart


def histogram(df: pd.DataFrame, by: str) -> alt.Chart:
    """Histogram of P(positive), one panel per model (df: model, group, bin_start, bin_end, n, share)."""
    color = (alt.Color("group:N", title=by, legend=alt.Legend(orient="bottom")) if by != "none"
             else alt.value("#2e86ab"))
    y = alt.Y("share:Q", title="share of reviews", axis=alt.Axis(format="%"), stack=None)
    chart = alt.Chart(df).mark_bar(opacity=0.75 if by != "none" else 1, binSpacing=1).encode(
        x=alt.X("bin_start:Q", bin="binned", title="P(positive)", scale=alt.Scale(domain=[0, 1])),
        x2="bin_end:Q",
        y=y,
        color=color,
        tooltip=["model", "group", alt.Tooltip("bin_start:Q", title="from", format=".2f"),
                 alt.Tooltip("bin_end:Q", title="to", format=".2f"), alt.Tooltip("n:Q", format=","),
                 alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=300, height=160)
    return chart.facet(facet=alt.Facet("model:N", title=None), columns=3)


def confusion(df: pd.DataFrame, normalise: bool) -> alt.Chart:
    """2x2 heatmaps, one per model (df: model, tn, fp, fn, tp). Normalised = share of each true label."""
    rows = []
    for r in df.itertuples():
        for cell, actual, predicted in (("tn", "negative", "negative"), ("fp", "negative", "positive"),
                                        ("fn", "positive", "negative"), ("tp", "positive", "positive")):
            n = int(getattr(r, cell))
            total = (r.tn + r.fp) if actual == "negative" else (r.fn + r.tp)
            rows.append({"model": r.model, "cell": cell.upper(), "actual": actual, "predicted": predicted,
                         "n": n, "rate": n / total if total else 0.0})
    long = pd.DataFrame(rows)
    value = "rate" if normalise else "n"
    fmt = ".1%" if normalise else ","
    base = alt.Chart(long).encode(
        x=alt.X("predicted:N", title="predicted", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("actual:N", title="true label"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["model", "cell", "actual", "predicted", alt.Tooltip("n:Q", format=","),
                 alt.Tooltip("rate:Q", format=".1%", title="share of true label")],
    )
    text = base.mark_text(fontSize=15).encode(
        text=alt.Text(f"{value}:Q", format=fmt),
        color=alt.condition("datum.rate > 0.5", alt.value("white"), alt.value("black")),
    )
    return (heat + text).properties(width=220, height=180).facet(
        facet=alt.Facet("model:N", title=None), columns=3)


def roc(points: pd.DataFrame, aucs: pd.DataFrame, at: pd.DataFrame | None = None) -> alt.Chart:
    """ROC curves of all models with the AUC in the legend; ``at`` marks each model's current threshold
    (points: model, fpr, tpr; aucs: model, roc_auc; at: model, fpr, tpr)."""
    names = _legend_names(aucs, "roc_auc", "AUC")
    df = points.assign(curve=points["model"].map(names))
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(
        strokeDash=[4, 4], color="#bbb").encode(x="x:Q", y="y:Q")
    lines = alt.Chart(df).mark_line(interpolate="linear").encode(
        x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="true positive rate (recall)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("curve:N", scale=MODELS, legend=_models_legend()),
        order=alt.Order("threshold:Q", sort="descending"),
        tooltip=["model", alt.Tooltip("threshold:Q", format=".3f"), alt.Tooltip("fpr:Q", format=".3f"),
                 alt.Tooltip("tpr:Q", format=".3f")],
    )
    chart = diagonal + lines
    if at is not None and not at.empty:
        chart += _marks(at.assign(curve=at["model"].map(names)), "fpr", "tpr")
    return chart.properties(height=340, title="ROC")


def pr(points: pd.DataFrame, aucs: pd.DataFrame, at: pd.DataFrame | None = None) -> alt.Chart:
    """Precision-recall curves of all models, PR-AUC in the legend."""
    names = _legend_names(aucs, "pr_auc", "PR-AUC")
    df = points.dropna(subset=["precision"]).assign(curve=points["model"].map(names))
    lines = alt.Chart(df).mark_line().encode(
        x=alt.X("recall:Q", title="recall", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("precision:Q", title="precision", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("curve:N", scale=MODELS, legend=_models_legend()),
        order=alt.Order("threshold:Q", sort="descending"),
        tooltip=["model", alt.Tooltip("threshold:Q", format=".3f"), alt.Tooltip("recall:Q", format=".3f"),
                 alt.Tooltip("precision:Q", format=".3f")],
    )
    chart = lines
    if at is not None and not at.empty:
        chart += _marks(at.assign(curve=at["model"].map(names)), "recall", "precision")
    return chart.properties(height=340, title="Precision-recall")


def _legend_names(aucs: pd.DataFrame, column: str, label: str) -> dict[str, str]:
    return {r.model: (f"{r.model} ({label} {getattr(r, column):.3f})" if pd.notna(getattr(r, column))
                      else r.model) for r in aucs.itertuples()}


def _marks(at: pd.DataFrame, x: str, y: str) -> alt.Chart:
    return alt.Chart(at.dropna(subset=[x, y])).mark_point(size=120, filled=True, stroke="black").encode(
        x=f"{x}:Q", y=f"{y}:Q", color=alt.Color("curve:N", scale=MODELS, legend=None),
        tooltip=["model", alt.Tooltip(f"{x}:Q", format=".3f"), alt.Tooltip(f"{y}:Q", format=".3f")])


def calibration(df: pd.DataFrame) -> alt.Chart:
    """Reliability diagram (df: model, bin, mean_p, observed, n): perfect calibration is the diagonal."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(
        strokeDash=[4, 4], color="#bbb").encode(x="x:Q", y="y:Q")
    lines = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("mean_p:Q", title="mean predicted P(positive)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("observed:Q", title="observed share positive", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=MODELS, legend=_models_legend()),
        tooltip=["model", alt.Tooltip("mean_p:Q", format=".3f"), alt.Tooltip("observed:Q", format=".3f"),
                 alt.Tooltip("n:Q", format=",")],
    )
    return (diagonal + lines).properties(height=340, title="Calibration (reliability)")


def agreement(df: pd.DataFrame) -> alt.Chart:
    """Model-by-model agreement heatmap (df: model_a, model_b, agreement)."""
    base = alt.Chart(df).encode(x=alt.X("model_b:N", title=None, axis=alt.Axis(labelAngle=-30)),
                                y=alt.Y("model_a:N", title=None))
    heat = base.mark_rect().encode(
        color=alt.Color("agreement:Q", scale=alt.Scale(scheme="greens", domain=[0.5, 1]), legend=None),
        tooltip=["model_a", "model_b", alt.Tooltip("agreement:Q", format=".1%"), alt.Tooltip("n:Q", format=",")],
    )
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("agreement:Q", format=".1%"),
        color=alt.condition("datum.agreement > 0.85", alt.value("white"), alt.value("black")))
    return (heat + text).properties(width=alt.Step(80), height=alt.Step(32))


def scores(df: pd.DataFrame) -> alt.Chart:
    """Try it: one bar per model (df: model, p_positive)."""
    df = df.assign(sentiment=(df["p_positive"] >= 0.5).map({True: "positive", False: "negative"}))
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("p_positive:Q", title="P(positive)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("model:N", title=None),
        color=alt.Color("sentiment:N", scale=SENTIMENT, legend=None),
        tooltip=["model", alt.Tooltip("p_positive:Q", format=".3f")],
    )
    rule = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[3, 3]).encode(x="x:Q")
    return (bars + rule).properties(height=alt.Step(30))


def training(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Per-epoch curves, train vs validation (df: model, epoch, train_<metric>, val_<metric>; with a
    provenance column, each model's legend entry says where it learnt)."""
    ids = ["model", "epoch", *(["provenance"] if "provenance" in df else [])]
    long = df.melt(id_vars=ids, value_vars=[f"train_{metric}", f"val_{metric}"],
                   var_name="set", value_name=metric).dropna(subset=[metric])
    long["set"] = long["set"].str.replace(f"_{metric}", "", regex=False)
    long["curve"] = long["model"] + (" (" + long["provenance"] + ")" if "provenance" in long else "")
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:O", title="epoch"),
        y=alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False)),
        # legends on the right: below the plot, a long one would squash the plot to a strip
        color=alt.Color("curve:N", scale=MODELS, legend=alt.Legend(title="model", orient="right", labelLimit=320)),
        strokeDash=alt.StrokeDash("set:N", legend=alt.Legend(orient="right", title="set", symbolType="stroke",
                                                             symbolStrokeColor="black")),
        tooltip=["model", *(["provenance"] if "provenance" in long else []), "epoch", "set",
                 alt.Tooltip(f"{metric}:Q", format=".4f")],
    ).properties(height=240, title={"acc": "accuracy"}.get(metric, metric))


def loss_terms(df: pd.DataFrame) -> alt.FacetChart:
    """One panel per model: each term of its training loss against the training examples seen (df: model,
    examples, term, value; data.training_terms)."""
    return alt.Chart(df).mark_line().encode(
        x=alt.X("examples:Q", title="training examples seen"),
        y=alt.Y("value:Q", title="loss term (mean since the previous point)", scale=alt.Scale(zero=True)),
        color=alt.Color("term:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["model", "term", alt.Tooltip("examples:Q", format=","), alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=220, width=320).facet(facet=alt.Facet("model:N", title=None), columns=2)


SLICE_METRICS = {"accuracy": "accuracy", "roc_auc": "ROC-AUC", "positive_share": "predicted positive"}


def slice_heatmap(df: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Model x slice heatmap of ``metric`` with the value printed (df: slicing.slices). Clicking a cell
    selects its slice (the selection parameter is named 'slice')."""
    title = SLICE_METRICS[metric]
    df = df.assign(value_=df[metric], text=[f"{v:.3f}" if pd.notna(v) else "n/a" for v in df[metric]])
    pick = alt.selection_point(name="slice", fields=["value"], on="click")
    order = df.drop_duplicates("value").sort_values("order")["value"].tolist()
    base = alt.Chart(df).encode(
        x=alt.X("value:N", title=None, sort=order,
                axis=alt.Axis(labelAngle=-35, labelAlign="right", labelLimit=180, labelOverlap=False)),
        y=alt.Y("model:N", title=None, axis=alt.Axis(labelLimit=240)))
    heat = base.mark_rect().encode(
        color=alt.Color("value_:Q", title=title, scale=alt.Scale(scheme="redyellowblue")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=[alt.Tooltip("value:N", title="slice"), "model", alt.Tooltip("reviews:Q", format=","),
                 alt.Tooltip(f"{metric}:Q", format=".3f", title=title),
                 alt.Tooltip(f"{metric}_lo:Q", format=".3f", title="95% low"),
                 alt.Tooltip(f"{metric}_hi:Q", format=".3f", title="95% high")]).add_params(pick)
    text = base.mark_text(fontSize=11).encode(text="text:N")
    return (heat + text).properties(height=alt.Step(28))


def slice_intervals(df: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Each slice's ``metric`` with its 95% interval, one colour per model, worst slices first."""
    title = SLICE_METRICS[metric]
    df = df.dropna(subset=[metric])
    worst = df.groupby("value")[metric].min().sort_values().index.tolist()
    base = alt.Chart(df).encode(y=alt.Y("value:N", title=None, sort=worst, axis=alt.Axis(labelLimit=200)),
                                color=alt.Color("model:N", scale=MODELS, legend=_models_legend()),
                                yOffset="model:N")
    rules = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{metric}_lo:Q", title=f"{title} (95% interval)", scale=alt.Scale(zero=False)), x2=f"{metric}_hi:Q")
    dots = base.mark_point(filled=True, size=50).encode(
        x=f"{metric}:Q", tooltip=[alt.Tooltip("value:N", title="slice"), "model",
                                  alt.Tooltip("reviews:Q", format=","), alt.Tooltip(f"{metric}:Q", format=".3f"),
                                  alt.Tooltip(f"{metric}_lo:Q", format=".3f"),
                                  alt.Tooltip(f"{metric}_hi:Q", format=".3f")])
    return (rules + dots).properties(height=alt.Step(12))


Y_LABELS = 48  # pixels kept for the y labels of charts drawn one above the other, so their x axes line up

# Time axis labels that carry the year, per period (d3 time formats)
PERIOD_FORMAT = {"day": "%d %b %Y", "week": "%d %b %Y", "month": "%b %Y", "quarter": "Q%q %Y", "year": "%Y"}


def _time_axis(period: str) -> alt.X:
    # ticks on period boundaries: vega's own ticks fall between them and a coarse format repeats ("2008 2008")
    ticks = {"tickCount": {"interval": period, "step": 1}} if period in ("month", "quarter", "year") else {}
    return alt.X("period:T", title=None, axis=alt.Axis(format=PERIOD_FORMAT.get(period, "%b %Y"), labelAngle=0,
                                                      labelOverlap=True, **ticks))


def over_time(df: pd.DataFrame, metric: str, title: str, period: str = "month") -> alt.LayerChart:
    """``metric`` per period and model (df: slicing.over_time) with its 95% band (``metric``_lo/_hi); a thin
    period's point is hollow. For the predicted-positive share, the labels' own positive share as a black
    dashed line."""
    x = _time_axis(period)
    y = alt.Y(f"{metric}:Q", title=title, scale=alt.Scale(zero=False), axis=alt.Axis(minExtent=Y_LABELS))
    color = alt.Color("model:N", scale=MODELS, legend=_models_legend())  # below: the review counts line up
    band = alt.Chart(df).mark_area(opacity=0.15).encode(x=x, y=alt.Y(f"{metric}_lo:Q", title=title),
                                                         y2=f"{metric}_hi:Q", color=color)
    lines = alt.Chart(df).mark_line().encode(x=x, y=y, color=color)
    points = alt.Chart(df).mark_point(size=30).encode(
        x=x, y=y, color=color,
        fill=alt.condition("datum.thin", alt.value("white"), color),
        tooltip=[alt.Tooltip("period:T", format=PERIOD_FORMAT.get(period, "%b %Y")), "model",
                 alt.Tooltip(f"{metric}:Q", format=".3f"), alt.Tooltip(f"{metric}_lo:Q", format=".3f", title="95% low"),
                 alt.Tooltip(f"{metric}_hi:Q", format=".3f", title="95% high"),
                 alt.Tooltip("reviews:Q", format=","), alt.Tooltip("labelled:Q", format=","), "thin:N"])
    layers = band + lines + points
    if metric != "positive_share" or df["true_share"].isna().all():
        return layers.properties(height=HEIGHT)
    truth = alt.Chart(df.drop_duplicates("period")).mark_line(color="black", strokeDash=[5, 3]).encode(
        x=x, y="true_share:Q", tooltip=[alt.Tooltip("period:T", format=PERIOD_FORMAT.get(period, "%b %Y")),
                                        alt.Tooltip("true_share:Q", format=".3f", title="true positive share")])
    return (layers + truth).properties(height=HEIGHT)


def review_counts(df: pd.DataFrame, period: str = "month") -> alt.Chart:
    """Reviews per period (df: slicing.over_time; one model's rows)."""
    return alt.Chart(df.drop_duplicates("period")).mark_bar(color="#999").encode(
        x=_time_axis(period), y=alt.Y("reviews:Q", title="reviews", axis=alt.Axis(minExtent=Y_LABELS)),
        tooltip=[alt.Tooltip("period:T", format=PERIOD_FORMAT.get(period, "%b %Y")),
                 alt.Tooltip("reviews:Q", format=",")]).properties(height=150)


def term_trend(df: pd.DataFrame, term: str, period: str = "month", thin: int = 30) -> alt.LayerChart:
    """Per period (df: core.drivers.term_trend), the negative share of the reviews that use ``term`` beside
    that of all reviews, each with its 95% band; a period with fewer than ``thin`` reviews is a hollow point."""
    lines = {f"reviews using “{term}”": ("term_share", "term_reviews"), "all reviews": ("negative_share", "reviews")}
    long = pd.concat([pd.DataFrame({"period": df["period"], "reviews of": name, "share": df[share],
                                    "lo": df[f"{share}_lo"], "hi": df[f"{share}_hi"], "n": df[n]})
                      for name, (share, n) in lines.items()]).dropna(subset=["share"])
    long["thin"] = long["n"] < thin
    x = _time_axis(period)
    color = alt.Color("reviews of:N", scale=alt.Scale(domain=list(lines), range=["#d1495b", "#555"]),
                      legend=alt.Legend(orient="right", title=None, labelLimit=260))
    y = alt.Y("share:Q", title="negative share", scale=alt.Scale(domain=[0, 1]))
    base = alt.Chart(long)
    band = base.mark_area(opacity=0.15).encode(x=x, y=alt.Y("lo:Q", title="negative share"), y2="hi:Q", color=color)
    points = base.mark_point(size=30).encode(
        x=x, y=y, color=color, fill=alt.condition("datum.thin", alt.value("white"), color),
        tooltip=[alt.Tooltip("period:T", format=PERIOD_FORMAT.get(period, "%b %Y")), "reviews of:N",
                 alt.Tooltip("share:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f", title="95% low"),
                 alt.Tooltip("hi:Q", format=".3f", title="95% high"), alt.Tooltip("n:Q", format=",", title="reviews")])
    return (band + base.mark_line().encode(x=x, y=y, color=color) + points).properties(height=HEIGHT)
