"""The dashboard's read layer, one import for the pages (``from dashboard import data``). Split by concern:

    dashboard.db           the file, its read-only connection, ``read`` (runs one of core.store's reads)
    dashboard.aggregates   corpora, models, leaderboard, matrix, cube, distributions, curves, thresholds
    dashboard.rows         reviews of a cell, disagreements, the Reviews page
    dashboard.slicing      kept columns: values, slices, series over time

The SQL they run is core.store's (store.reads, store.review_rows, store.cube); they choose which read
answers and cache it. Pages only call them and draw.
"""

from dashboard.aggregates import (  # noqa: F401
    LEXICON,
    MATRIX_METRICS,
    UNRECORDED,
    _sliced,
    aucs,
    binned_metrics,
    calibration,
    confusion,
    confusion_at,
    corpora,
    cross_corpus,
    cube,
    fill_commands,
    histogram,
    labelled_count,
    leaderboard,
    matrix_table,
    model_facts,
    models,
    rejects,
    roc_pr,
    shares,
    splits,
    summary,
    trained_models,
    training_log,
    training_terms,
    wide,
    with_provenance,
)
from dashboard.db import (  # noqa: F401
    BINS,
    CACHE,
    CSV_MAX_ROWS,
    HINT,
    SEARCH_CHUNK,
    TEXT_ROWS,
    Outdated,
    ReviewFilter,
    Selection,
    Source,
    Unavailable,
    clear_caches,
    db_path,
    read,
    source,
    training_now,
)
from dashboard.rows import (  # noqa: F401
    CELLS,
    DRIVER_SAMPLE,
    DRIVER_SIDES,
    TREND_SAMPLE,
    Group,
    agreement,
    cell_reviews,
    disagreement_counts,
    disagreements,
    drivers,
    length_range,
    period_bounds,
    period_label,
    review_count,
    review_csv,
    review_page,
    searched,
    term_trend,
)
