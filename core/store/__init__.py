"""The one owner of the project's SQL writes to DuckDB, split by what it stores (every value is bound as a
parameter; the dashboard's summaries are core.summaries):

    connection   the schema (one DDL, SCHEMA_VERSION), opening the file, transactions, publishing the view
    corpora      corpora, their input files and splits, reviews and their kept columns
    results      predictions, rejects, runs, models, speed, metrics and curves
    generated    data generators for the benchmarks (a resampled corpus, a synthetic database)

``from core import store`` gives all of them, as before: ``store.connect``, ``store.insert_reviews``, ...
"""

from core.store.connection import (  # noqa: F401
    SCHEMA,
    SCHEMA_VERSION,
    connect,
    publish,
    transaction,
    tune_for_bulk_writes,
    view_path,
)
from core.store.corpora import (  # noqa: F401
    corpus_details,
    corpus_exists,
    corpus_files,
    corpus_source,
    count_reviews,
    existing_reviews,
    file_read,
    file_unscored,
    id_hashes,
    insert_fields,
    insert_reviews,
    iter_review_chunks,
    load_split,
    mark_file_read,
    record_corpus_file,
    set_field_kinds,
    set_split_recipe,
    set_splits,
    split_counts,
    stored_id_hashes,
    unsplit_labelled,
    upsert_corpus,
)
from core.store.generated import (  # noqa: F401
    BENCH_FIELDS,
    EXPORT_FORMATS,
    build_bench_corpus,
    export_resampled_imdb,
    resampled_imdb_batches,
)
from core.store.results import (  # noqa: F401
    close_stale_runs,
    count_rejects,
    cross_corpus,
    evaluation_sets,
    finish_run,
    has_model,
    insert_predictions,
    insert_rejects,
    labelled_corpora,
    labelled_predictions,
    leaderboard,
    models_done,
    prediction_counts,
    record_model,
    record_speed,
    replace_metrics,
    start_run,
)
