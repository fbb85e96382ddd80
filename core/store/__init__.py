"""The one owner of the project's SQL: every statement that reads or writes DuckDB lives in this package
(every value is bound as a parameter; tests/test_sql_owner.py fails on SQL anywhere else). By what it does:

    connection   the schema (one DDL, SCHEMA_VERSION), opening the file or a published view, transactions,
                 publishing the view
    corpora      writes and reads of corpora, their input files and splits, reviews and their kept columns
    results      writes and reads of predictions, rejects, runs, models, speed, metrics and curves
    texts        the review texts: staged in the file, then in Parquet parts beside it that every read of
                 a text goes through
    summaries    the summaries' layout and the SQL the publish and the dashboard's live reads share
    summarise    building the summaries at publish time
    reads        the aggregate reads of a view: corpora, models, leaderboard, matrix, cube, kept columns
    review_rows  the row reads of a view: a cell's reviews, disagreements, the Reviews page
    cube         metrics, curves and shares computed from a cube (a small frame of counts)
    pools        the benchmark jobs' bulk reads and writes: a corpus's pool of labelled reviews and stored
                 predictions (read-only, from a job's database or its view), appending generated rows

``from core import store`` gives the writes and the shared reads: ``store.connect``, ``store.insert_reviews``,
``store.leaderboard``, ...; the dashboard's reads are ``store.reads``, ``store.review_rows``, ``store.cube``.
"""

from core.store import cube, reads, review_rows, summaries, summarise, texts  # noqa: F401
from core.store.connection import (  # noqa: F401
    SCHEMA,
    SCHEMA_VERSION,
    OutdatedView,
    connect,
    open_view,
    publish,
    transaction,
    tune_for_bulk_writes,
    view_cursor,
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
    review,
    set_field_kinds,
    set_split_recipe,
    set_splits,
    split_counts,
    stored_id_hashes,
    unsplit_labelled,
    upsert_corpus,
)
from core.store.pools import (  # noqa: F401
    append_fields,
    append_predictions,
    append_reviews,
    copy_model_records,
    duckdb_json_texts,
    labelled_pool,
    open_readable,
    stored_predictions,
)
from core.store.reads import cross_corpus, leaderboard, prediction_counts, rejects  # noqa: F401
from core.store.results import (  # noqa: F401
    close_stale_runs,
    evaluation_sets,
    finish_run,
    has_model,
    insert_predictions,
    insert_rejects,
    labelled_corpora,
    labelled_predictions,
    models_done,
    record_model,
    record_speed,
    replace_metrics,
    start_run,
)
