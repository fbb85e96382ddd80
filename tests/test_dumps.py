"""Review dumps as public collections ship them, written here from real IMDB reviews: Amazon/Yelp polarity
(CSV without a header), McAuley's Amazon reviews (gzipped JSON Lines), Yelp's JSON Lines, fastText label lines
and a gzipped CSV; each with one broken record of its own kind. ``--inspect`` prints the command that imports
each, and that command imports it with exact counts."""

from __future__ import annotations

import bz2
import csv
import doctest
import gzip
import itertools
import json
import lzma
import shlex
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import duckdb
import pytest
import zstandard

import core.inspection
import core.readers
import core.readers.sources
from core.corpus import read_imdb
from core.errors import InputError
from core.models import FACTS, load_model
from core.paths import REPO_ROOT
from core.readers import Columns, Format, read_chunks
from jobs import bench_import, score
from tests.helpers import JOIN_TEXTS, q

N = 120  # reviews per file


def test_doctests():
    for module in (core.readers, core.readers.sources, core.inspection):
        assert doctest.testmod(module).failed == 0


@pytest.fixture(scope="module")
def imdb() -> list[tuple[str, str]]:
    """(review, sentiment) of the first 1,200 IMDB reviews, raw (with their <br /> tags)."""
    raw = read_imdb().head(1200)
    return list(zip(raw["review"], raw["sentiment"]))


def title_of(text: str) -> str:
    return " ".join(text.replace("<br />", " ").split()[:5])


def write_polarity(path: Path, rows: list[tuple[str, str]]) -> int:
    """Zhang et al.'s polarity CSV: no header, class 1|2, title, body with newlines written as \\n; one row
    short of a field. Returns the number of records."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        for i, (text, label) in enumerate(rows):
            body = text.replace("<br /><br />", "\\n")
            w.writerow(["2" if label == "positive" else "1", title_of(text), body])
            if i == 10:
                w.writerow(["1", "a row short of its body"])
    return len(rows) + 1


def write_amazon(path: Path, rows: list[tuple[str, str]]) -> None:
    """McAuley's Amazon reviews: gzipped JSON Lines with reviewText, summary, overall, helpful [up, total],
    unixReviewTime and reviewTime "MM DD, YYYY"."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, (text, label) in enumerate(rows):
            f.write(json.dumps({
                "reviewerID": f"A{i:05d}X", "asin": f"B{i % 7:09d}", "reviewerName": f"name {i}",
                "helpful": [i % 3, 3], "reviewText": text, "overall": 5.0 if label == "positive" else 1.0,
                "summary": title_of(text), "unixReviewTime": 1300000000 + 86400 * i,
                "reviewTime": time.strftime("%m %d, %Y", time.gmtime(1300000000 + 86400 * i))}) + "\n")


def write_yelp(path: Path, rows: list[tuple[str, str]]) -> int:
    """Yelp's JSON Lines (text, stars, business_id, useful, date); one line of broken JSON."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, label) in enumerate(rows):
            f.write(json.dumps({"review_id": f"y{i}", "text": text, "stars": 5 if label == "positive" else 2,
                                "business_id": f"b{i % 5}", "useful": i % 4,
                                "date": f"2016-07-{1 + i % 28:02d} 03:43:51"}) + "\n")
            if i == 20:
                f.write('{"review_id": "broken", "text": "never closed\n')
    return len(rows) + 1


def write_fasttext(path: Path, rows: list[tuple[str, str]]) -> int:
    """fastText lines, __label__1 (negative) and __label__2 (positive); one line without a label."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, label) in enumerate(rows):
            f.write(f"__label__{2 if label == 'positive' else 1} {' '.join(text.split())}\n")
            if i == 30:
                f.write("this line has no label at all\n")
    return len(rows) + 1


def write_csv_gz(path: Path, rows: list[tuple[str, str]]) -> int:
    """A plain CSV with a header, gzipped; one row with a label that is not a sentiment."""
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "sentiment"])
        for i, (text, label) in enumerate(rows):
            w.writerow([f"c{i}", text, label])
        w.writerow(["c-bad", "A fine review with an odd label", "maybe"])
    return len(rows) + 1


def truncate(path: Path) -> int:
    """Cut a gzip file to 70% of its bytes; returns the complete lines that still decompress."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    readable = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[: int(len(data) * 0.7)])
    return readable.count(b"\n")


def inspected_command(path: Path, db: Path, capsys) -> list[str]:
    assert score.main([str(path), "--inspect", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    line = out.strip().splitlines()[-1].strip()
    assert line.startswith("python -m jobs.score "), out
    return shlex.split(line)[3:]


@pytest.mark.parametrize("kind", ["polarity", "amazon", "yelp", "fasttext", "csv-gz"])
def test_each_dump_is_imported_with_the_command_inspect_prints(kind, imdb, tmp_path, capsys):
    rows = imdb[:N]
    name = {"polarity": "train.csv", "amazon": "reviews_Books_5.json.gz", "yelp": "yelp_review.json",
            "fasttext": "train.ft.txt", "csv-gz": "reviews.csv.gz"}[kind]
    path = tmp_path / name
    if kind == "amazon":
        write_amazon(path, rows)
        stored_expected = truncate(path)  # the broken record: a truncated gzip stream
        records = stored_expected + 1     # the lost tail is one reject
    else:
        records = {"polarity": write_polarity, "yelp": write_yelp, "fasttext": write_fasttext,
                   "csv-gz": write_csv_gz}[kind](path, rows)
        stored_expected = N
    db = tmp_path / "dumps.duckdb"
    args = inspected_command(path, db, capsys)
    expected_flags = {
        "polarity": ["--no-header", "--text-col", "2,3", "--label-col", "1", "--label-map", "1=negative,2=positive",
                     "--unescape"],
        "amazon": ["--text-col", "summary,reviewText", "--label-col", "overall", "--label-kind", "stars"],
        "yelp": ["--text-col", "text", "--id-col", "review_id", "--label-col", "stars", "--label-kind", "stars"],
        "fasttext": ["--text-col", "text", "--label-col", "label", "--label-map", "1=negative,2=positive"],
        "csv-gz": ["--text-col", "review", "--id-col", "id", "--label-col", "sentiment"],
    }[kind]
    for flag in expected_flags:
        assert flag in args, (flag, args)
    assert score.main([*args, "--models-dir", str(tmp_path / "no-models")]) == 0  # 'all' = the built-in vader
    corpus = args[args.index("--corpus") + 1]

    stored = q(db, "SELECT count(*) FROM reviews WHERE corpus = ?", [corpus])[0][0]
    rejected = q(db, "SELECT count(*) FROM rejects WHERE corpus = ?", [corpus])[0][0]
    assert (stored, rejected) == (stored_expected, 1)
    assert stored + rejected == records
    assert q(db, "SELECT count(*) FROM predictions WHERE corpus = ? AND model = 'vader'", [corpus]) == [(stored,)]
    # labels: class 1 (or 1-2 stars) negative, 2 (or 4-5 stars) positive, as IMDB said
    truth = [label for _, label in rows[:stored]]
    labels = [r[0] for r in q(db, "SELECT label FROM reviews WHERE corpus = ? ORDER BY source_row", [corpus])]
    assert labels == truth
    location, reason = q(db, "SELECT location, reason FROM rejects WHERE corpus = ?", [corpus])[0]
    assert {"polarity": "expected 3 fields, found 2", "amazon": "gzip data ends early",
            "yelp": "invalid JSON", "fasttext": "no __label__ at the start of the line",
            "csv-gz": "label 'maybe' is not one of"}[kind] in reason
    line = {"polarity": "line 12", "amazon": f"line {stored + 1}", "yelp": "line 22", "fasttext": "line 32",
            "csv-gz": f"row {N}"}[kind]
    assert location.startswith(f"{line} of {name} ("), location
    first = q(db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = ? ORDER BY source_row LIMIT 1", [corpus])[0][0]
    if kind in ("polarity", "amazon"):  # title and body joined, title first
        assert first.startswith(title_of(rows[0][0]) + ". ")
        assert "\\n" not in first and "<br" not in first
    if kind == "amazon":  # both date columns parsed, one day apart per review
        days = q(db, "SELECT field, count(time_value), max(time_value) - min(time_value) FROM review_fields "
                     "WHERE corpus = ? AND kind = 'datetime' GROUP BY 1 ORDER BY 1", [corpus])
        assert [(f, n) for f, n, _ in days] == [("reviewTime", stored), ("unixReviewTime", stored)]
        assert all(span.days == stored - 1 for _, _, span in days)
    if kind == "yelp":
        assert q(db, "SELECT count(time_value) FROM review_fields WHERE corpus = ? AND field = 'date'",
                 [corpus]) == [(stored,)]


def test_without_text_col_the_unambiguous_guess_is_used_and_said(imdb, tmp_path, capsys):
    path = tmp_path / "train.csv"
    write_polarity(path, imdb[:N])
    db = tmp_path / "g.duckdb"
    assert score.main([str(path), "--db", str(db), "--corpus", "p", "--models", "none"]) == 0
    err = capsys.readouterr().err
    assert "no --text-col given: using the guess --text-col 2,3 --label-col 1" in err
    assert q(db, "SELECT count(*), count(label) FROM reviews") == [(N, N)]


def test_an_ambiguous_guess_is_a_clear_error(imdb, tmp_path):
    path = tmp_path / "two.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pros", "cons"])
        w.writerows([[a, b] for (a, _), (b, _) in zip(imdb[:40], imdb[40:80])])
    with pytest.raises(InputError, match="the guess is not clear.*('pros' and 'cons'|'cons' and 'pros') are both long"):
        score.main([str(path), "--db", str(tmp_path / "a.duckdb"), "--corpus", "a", "--models", "none"])


# ----------------------------------------------------------------------------- bytes and encodings


ROWS = [("r0", "Caf\u00e9 cr\u00e8me tr\u00e8s bon", "positive"), ("r1", "Na\u00efve plot \u00bfpor qu\u00e9?", "negative")]


def read(path: Path, fmt: Format | None = None, cols: Columns | None = None):
    chunks = list(read_chunks(path, cols or Columns("text", "id", "label"), 100, fmt))
    return [tuple(r) for c in chunks for r in c.reviews[["review_id", "text", "label"]].values], \
        [r for c in chunks for r in c.rejects["reason"]]


def csv_bytes(delimiter: str = ",") -> str:
    return "".join(delimiter.join(r) + "\r\n" for r in [("id", "text", "label"), *ROWS])


@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)])
def test_compression_is_told_by_the_bytes_whatever_the_name(tmp_path, compress):
    path = tmp_path / "reviews.csv"  # named .csv whatever it holds
    data = csv_bytes().encode()
    path.write_bytes(compress(data) if compress else data)
    assert read(path) == ([tuple(r) for r in ROWS], [])


@pytest.mark.parametrize("delimiter", ["\t", ";", "|"])
def test_the_delimiter_of_a_file_named_csv_is_sniffed(tmp_path, delimiter):
    path = tmp_path / "export.csv"
    path.write_text(csv_bytes(delimiter).replace("tr\u00e8s bon", "tr\u00e8s, bon"), encoding="utf-8")
    reviews, rejects = read(path)
    assert [r[0] for r in reviews] == ["r0", "r1"] and rejects == []


@pytest.mark.parametrize("encoding, asked", [("utf-16", None), ("utf-16-le", None), ("cp1252", "cp1252"),
                                             ("latin-1", "latin-1")])
def test_spreadsheet_encodings(tmp_path, encoding, asked):
    path = tmp_path / "excel.csv"
    data = csv_bytes().encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data  # a byte-order mark, as Excel writes it
    path.write_bytes(data)
    assert read(path, Format(encoding=asked)) == ([tuple(r) for r in ROWS], [])


def test_a_legacy_file_read_as_utf8_says_which_option_reads_it(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes(csv_bytes().encode("cp1252"))
    reviews, rejects = read(path)
    assert reviews == [] and len(rejects) == 2
    assert all("not valid UTF-8" in r and "--encoding cp1252" in r for r in rejects)


def test_headerless_numbered_columns_label_map_and_unescape(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('"2","Great","Line one\\nline two"\n"1","Bad","Nope"\n"3","Odd","x"\n')
    cols = Columns("2,3", None, "1", label_map={"1": "negative", "2": "positive"})
    reviews, rejects = read(path, Format(header=False, unescape=True), cols)
    assert reviews == [("0", "Great. Line one line two", "positive"), ("1", "Bad. Nope", "negative")]
    assert rejects == ["label '3' is not in --label-map (1, 2)"]


def test_a_header_that_looks_like_data_hints_at_no_header(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('"2","Great","A very long first review body that is certainly not a column name"\n')
    with pytest.raises(InputError, match="no text column '3'.*numbered from 1|no text column '3'"):
        read(path, None, Columns("3", None, "1"))


def test_nested_json_by_dotted_path_and_never_a_list_as_text(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in [
        {"id": 1, "review": {"body": "Loved it", "stars": 5}, "tags": ["a"]},
        {"id": 2, "review": {"body": ["not", "text"], "stars": 1}},
        {"id": 3, "review": {"body": "Hated it", "stars": 1.0}},
        [1, 2],
    ]) + "\n")
    reviews, rejects = read(path, None, Columns("review.body", "id", "review.stars", "stars"))
    assert reviews == [("1", "Loved it", "positive"), ("3", "Hated it", "negative")]
    assert rejects == ["text column 'review.body' holds a list, not a value", "not a JSON object (list)"]
    with pytest.raises(InputError, match="'tags' holds a list"):
        read(path, None, Columns("tags", "id"))
    with pytest.raises(InputError, match="'review' holds an object.*review.body"):
        read(path, None, Columns("review", "id"))


def test_a_json_array_is_a_clear_error(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(InputError, match="one JSON array, not JSON Lines"):
        read(path, None, Columns("text"))


def test_progress_is_over_the_compressed_bytes(tmp_path, imdb):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        for _ in range(6):
            w.writerows([[t] for t, _ in imdb])
    fractions = [c.fraction for c in read_chunks(path, Columns("text"), 200)]
    assert fractions[-1] == 1.0 and fractions[0] < 0.5
    assert all(a <= b for a, b in itertools.pairwise(fractions))


# --------------------------------------------------------------------------------- many files


def write_jsonl(path: Path, rows: list[tuple[str, str]], start: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": text, "rating": 5 if label == "positive" else 1, "n": start + i}) + "\n" for i, (text, label) in enumerate(rows))


def job(pattern: str, db: Path, models: Path, *extra: str) -> list[str]:
    return [pattern, "--db", str(db), "--corpus", "shop", "--text-col", "text", "--label-col", "rating",
            "--label-kind", "stars", "--models-dir", str(models), *extra]


def test_a_glob_keeps_each_file_name_and_reads_a_file_added_later(imdb, tmp_path, capsys):
    dump, db, models = tmp_path / "dump", tmp_path / "g.duckdb", tmp_path / "models"
    dump.mkdir()
    write_jsonl(dump / "Books.jsonl", imdb[:30], 0)
    write_jsonl(dump / "Music.jsonl", imdb[30:50], 30)
    assert score.main(job(str(dump / "*.jsonl"), db, models, "--models", "vader")) == 0
    assert q(db, "SELECT text_value, count(*) FROM review_fields WHERE field = 'file' GROUP BY 1 ORDER BY 1") == [
        ("Books", 30), ("Music", 20)]
    write_jsonl(dump / "Toys.jsonl", imdb[50:60], 50)
    capsys.readouterr()
    assert score.main(job(str(dump / "*.jsonl"), db, models, "--models", "vader")) == 0
    err = capsys.readouterr().err
    assert "Books.jsonl: already read whole (30 records) and scored by vader: skipped" in err
    assert q(db, "SELECT rows_read FROM runs ORDER BY started_at DESC LIMIT 1") == [(10,)]  # Toys alone
    assert q(db, "SELECT count(*) FROM reviews") == [(60,)]
    assert q(db, "SELECT count(*) FROM predictions") == [(60,)]
    assert q(db, "SELECT text_value, count(*) FROM review_fields WHERE field = 'file' GROUP BY 1 ORDER BY 1") == [
        ("Books", 30), ("Music", 20), ("Toys", 10)]
    # the same folder given as a folder: nothing new, every file skipped
    assert score.main(job(str(dump), db, models, "--models", "vader")) == 0
    assert q(db, "SELECT rows_read FROM runs ORDER BY started_at DESC LIMIT 1") == [(0,)]


def test_a_multi_file_run_killed_and_resumed_has_exact_counts(imdb, tmp_path):
    dump, db, models = tmp_path / "dump", tmp_path / "k.duckdb", tmp_path / "models"
    dump.mkdir()
    sizes = {"a": 400, "b": 400, "c": 300}
    start = 0
    for name, n in sizes.items():
        rows = imdb[start:start + n]
        write_jsonl(dump / f"{name}.jsonl", rows, start)
        with open(dump / f"{name}.jsonl", "a") as f:
            f.write("{not json}\n")  # one reject per file
        start += n
    cmd = [sys.executable, "-m", "jobs.score", *job(str(dump / "*.jsonl"), db, models, "--models", "vader",
                                                    "--chunk-rows", "20")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and "[score shop]" not in seen:  # progress printed: predictions committed
        seen += proc.stderr.readline()
    proc.kill()
    proc.wait()
    assert proc.returncode != 0  # killed mid-run, not finished
    with duckdb.connect(str(db), read_only=True) as con:
        partial = con.execute("SELECT count(*) FROM reviews").fetchone()[0]
    assert 0 < partial < sum(sizes.values())
    r = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "still marked 'running' (killed)" in r.stderr
    assert q(db, "SELECT count(*) FROM reviews") == [(1100,)]
    assert q(db, "SELECT count(*) FROM predictions") == [(1100,)]
    assert q(db, "SELECT count(*) FROM rejects") == [(3,)]
    assert q(db, "SELECT text_value, count(*) FROM review_fields WHERE field = 'file' GROUP BY 1 ORDER BY 1") == [
        ("a", 400), ("b", 400), ("c", 300)]


# --------------------------------------------------------------------------------- model facts


def test_a_model_json_from_before_the_facts_gives_them_from_the_model(scored_db, tmp_path):
    """A model saved before model.json kept its facts: jobs.score still records its kind, parameters, size and
    trained-on corpus in a database it was not trained in."""
    models = tmp_path / "models"
    shutil.copytree(scored_db.models_dir / "tfidf-lr", models / "old-lr")
    manifest = json.loads((models / "old-lr" / "model.json").read_text())
    old = {k: v for k, v in manifest.items() if k not in FACTS}  # what model.json held before it kept the facts
    (models / "old-lr" / "model.json").write_text(json.dumps(old))
    db = tmp_path / "fresh.duckdb"
    assert score.main([str(scored_db.csv), "--db", str(db), "--corpus", "mine", "--text-col", "review",
                       "--models", "old-lr", "--models-dir", str(models)]) == 0
    (kind, n_params, size, trained_on), = q(db, "SELECT kind, n_params, bytes_on_disk, trained_on FROM models")
    assert (kind, trained_on) == ("tfidf-lr", "imdb")
    assert n_params == load_model("tfidf-lr", scored_db.models_dir).n_params()
    assert size == sum(p.stat().st_size for p in (models / "old-lr").iterdir())


def test_the_import_benchmark_runs_end_to_end_on_a_small_file(scored_db, tmp_path, capsys):
    assert bench_import.main(["--rows", "300", "--dir", str(tmp_path), "--db", str(scored_db.db), "--formats",
                              "amazon", "--no-parsers"]) == 0
    table = capsys.readouterr().out
    assert "| amazon |" in table and "| 300 | 0 |" in table  # every review stored, none rejected


def test_the_14m_benchmark_shape_imports_and_scores_with_its_synthetic_columns(scored_db, tmp_path, capsys):
    """The 14-million-review benchmark at 300 rows: the polarity shape gzipped with a category and a day,
    imported and scored by tfidf-lr; the table gives each stage's reviews/s; both columns are kept and typed."""
    assert bench_import.main(["--rows", "300", "--dir", str(tmp_path), "--db", str(scored_db.db), "--formats",
                              "polarity-dated", "--models", "tfidf-lr", "--no-parsers", "--keep"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| polarity-dated |"))
    assert "| 300 | 0 |" in row and "read+clean " in row and "models " in row
    db = tmp_path / "import_polarity-dated.duckdb"
    assert q(db, "SELECT count(*) FROM predictions WHERE model = 'tfidf-lr'") == [(300,)]
    kinds = dict(q(db, "SELECT DISTINCT field, kind FROM review_fields"))
    assert kinds == {"4": "categorical", "5": "datetime"}
    days = q(db, "SELECT min(time_value), max(time_value) FROM review_fields WHERE field = '5'")[0]
    assert days[0].year >= 2014 and days[1].year <= 2023
