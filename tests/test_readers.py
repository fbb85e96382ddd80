"""core.readers.read_chunks on real hostile files: one bad row is one counted reject, never a stopped job."""

from __future__ import annotations

import os
import signal
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InputError
from core.readers import MAX_FIELD_BYTES, Columns, read_chunks
from core.readers.ahead import read_ahead

COLS = Columns("review", "id", "sentiment")


def read_all(path: Path, cols: Columns = COLS, chunk_rows: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    chunks = list(read_chunks(path, cols, chunk_rows))
    reviews = pd.concat([c.reviews for c in chunks]) if chunks else pd.DataFrame(columns=["review_id"])
    rejects = pd.concat([c.rejects for c in chunks]) if chunks else pd.DataFrame(columns=["reason"])
    return reviews.reset_index(drop=True), rejects.reset_index(drop=True)


def good_lines(first: int, n: int) -> bytes:
    return b"".join(f"r{i},Review {i} was good,positive\n".encode() for i in range(first, first + n))


def rows_ids(n: int, skip: int | None = None) -> list[str]:
    return [f"r{i}" for i in range(n) if i != skip]


# ---------------------------------------------------------------------------------- broken rows


@pytest.mark.parametrize("quote", [b"", b'"'])
def test_a_field_over_the_cap_is_one_reject_and_every_row_after_it_is_read(tmp_path, quote):
    big = quote + b"x" * (50 << 20) + quote
    path = tmp_path / "big.csv"
    path.write_bytes(b"id,review,sentiment\n" + good_lines(0, 10) + b"huge," + big + b",positive\n"
                     + good_lines(10, 10))
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == rows_ids(20)
    assert reviews["source_row"].tolist() == [*range(10), *range(11, 21)]  # the broken row keeps its place
    assert len(rejects) == 1
    assert rejects.loc[0, "location"] == "line 12"
    assert rejects.loc[0, "reason"].startswith(f"field longer than {MAX_FIELD_BYTES >> 20} MiB")
    assert rejects.loc[0, "excerpt"].startswith("huge,")


def test_an_unclosed_quote_before_more_than_the_cap_of_rows_is_one_reject(tmp_path):
    # the quote swallows every row after it until the csv field limit; then those rows are read again
    blob = "n" * (1 << 20)
    path = tmp_path / "q.csv"
    lines = ["id,review,notes\n", 'r0,"oops,short\n'] + [f"r{i},Review {i},{blob}\n" for i in range(1, 20)]
    path.write_text("".join(lines))
    reviews, rejects = read_all(path, Columns("review", "id"))
    assert reviews["review_id"].tolist() == rows_ids(20, skip=0)
    assert rejects[["location"]].values.tolist() == [["line 2"]]
    assert rejects.loc[0, "reason"].startswith("unparseable: broken quoting")


def test_bad_utf8_and_a_wrong_field_count_in_one_row_is_one_reject(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"id,review,sentiment\n" + good_lines(0, 2) + b"r9,Caf\xe9,extra,positive\n"
                     + good_lines(2, 2))
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == rows_ids(4)
    assert rejects[["location", "reason"]].values.tolist() == [
        ["line 4", "unparseable: expected 3 fields, found 4"]]
    assert rejects.loc[0, "excerpt"] == "r9,Caf\ufffd,extra,positive"


def test_bad_utf8_in_a_mapped_cell_is_rejected_and_elsewhere_ignored(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,review,sentiment,note\n" + b"r0,Caf\xe9 scene,positive,x\n"
                     + b"r1,Good,positive,caf\xe9\n" + b"r\xe92,Good,positive,x\n")
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == ["r1"]
    assert rejects["location"].tolist() == ["row 0", "row 2"]
    assert all(r.startswith("not valid UTF-8") for r in rejects["reason"])
    assert rejects.loc[0, "review_id"] == "r0" and pd.isna(rejects.loc[1, "review_id"])
    assert rejects.loc[0, "excerpt"] == "Caf\ufffd scene"


def test_an_unbalanced_quote_rejects_its_line_and_the_next_lines_are_rows(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_bytes(b"id,review,sentiment\n" + good_lines(0, 3) + b'r5,"oops,positive\n' + good_lines(3, 3)
                     + b'r6,"Quoted, fine",negative\n' + good_lines(7, 2))
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == [*rows_ids(7), "r7", "r8"]
    assert reviews.set_index("review_id").loc["r6", "text"] == "Quoted, fine"
    assert rejects["location"].tolist() == ["line 5"]
    assert rejects.loc[0, "reason"].startswith("unparseable: broken quoting")
    assert "line 5" in rejects.loc[0, "reason"]


def test_a_quote_left_open_at_the_end_of_the_file_is_one_reject(tmp_path):
    path = tmp_path / "tail.csv"
    path.write_bytes(b"id,review,sentiment\n" + good_lines(0, 2) + b'r2,"never closed,positive\n' + good_lines(3, 2))
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == ["r0", "r1", "r3", "r4"]
    assert rejects["location"].tolist() == ["line 4"]


def test_wrong_field_counts_are_rejects_at_their_line_and_keep_row_positions(tmp_path):
    path = tmp_path / "count.csv"
    path.write_bytes(b"review,sentiment\nGood,positive\nToo,many,fields\n\nBad,negative\nshort\n")
    reviews, rejects = read_all(path, Columns("review", None, "sentiment"))
    assert reviews[["review_id", "source_row"]].values.tolist() == [["0", 0], ["2", 2]]  # blank line: no row
    assert rejects[["location", "reason"]].values.tolist() == [
        ["line 3", "unparseable: expected 2 fields, found 3"], ["line 6", "unparseable: expected 2 fields, found 1"]]


@pytest.mark.parametrize("marker", ["NA", "null", "N/A", "NaN", "#N/A", "None", "nan", "NULL", "n/a", "-NaN"])
def test_null_markers_are_plain_text_as_ids_and_as_texts(tmp_path, marker):
    path = tmp_path / "nulls.csv"
    path.write_text(f"id,review,sentiment\n{marker},A review,positive\nr1,{marker},negative\nr2,,negative\n")
    reviews, rejects = read_all(path)
    assert reviews[["review_id", "text"]].values.tolist() == [[marker, "A review"], ["r1", marker]]
    assert rejects[["review_id", "reason"]].values.tolist() == [["r2", "empty text in column 'review'"]]


def test_a_text_that_cleans_to_nothing_is_rejected_in_its_place_and_does_not_claim_its_id(tmp_path):
    """Cleaning runs a chunk at a time, yet each record keeps the verdict it had alone: a text of formatting
    tags only is an empty text, rejected among the other rejects in row order, and a later row with the same
    id is a review, not a duplicate."""
    path = tmp_path / "tags.csv"
    path.write_text("id,review,sentiment\nr0,Fine <br /> film,positive\nr1,<br /><p> </p>,negative\n"
                    "r2,Bad,meh\nr1,Now with words,negative\n")
    reviews, rejects = read_all(path)
    assert reviews[["review_id", "text"]].values.tolist() == [["r0", "Fine film"], ["r1", "Now with words"]]
    assert rejects["location"].tolist() == ["row 1", "row 2"]
    assert rejects["reason"].iloc[0] == "empty text in column 'review'"


# ------------------------------------------------------------------------------------- formats


REVIEWS = [("r0", 'Multi\nline, with "quotes"\tand a tab', "positive"), ("r1", "Plain", "negative")]


@pytest.mark.parametrize("kind", ["lf", "crlf", "bom", "tsv", "tsv-crlf"])
def test_multiline_reviews_crlf_bom_and_tsv(tmp_path, kind):
    sep = "\t" if kind.startswith("tsv") else ","
    end = "\r\n" if kind.endswith("crlf") else "\n"
    quoted = ['"' + text.replace('"', '""') + '"' for _, text, _ in REVIEWS]
    body = end.join(sep.join((i, q, label)) for (i, _, label), q in zip(REVIEWS, quoted))
    text = ("\ufeff" if kind == "bom" else "") + sep.join(("id", "review", "sentiment")) + end + body + end
    path = tmp_path / f"f.{'tsv' if kind.startswith('tsv') else 'csv'}"
    path.write_bytes(text.encode())
    reviews, rejects = read_all(path)
    assert len(rejects) == 0
    assert reviews[["review_id", "text", "label"]].values.tolist() == [
        ["r0", 'Multi line, with "quotes" and a tab', "positive"], ["r1", "Plain", "negative"]]


def test_a_long_multiline_review_under_the_cap_is_read(tmp_path):
    review = "A long, long review.\n" * 100_000  # 2 MB over 100,000 lines, in one quoted field
    path = tmp_path / "long.csv"
    path.write_text(f'id,review,sentiment\nr0,"{review}",positive\nr1,Short,negative\n')
    reviews, rejects = read_all(path)
    assert reviews["review_id"].tolist() == ["r0", "r1"] and rejects.empty
    assert len(reviews.loc[0, "text"]) == len(review) - 1  # newlines are spaces, the last one stripped


@pytest.mark.parametrize("content, n", [(b"id,review", 0), (b"id,review\n", 0), (b"id,review\nr0,Good", 1)])
def test_a_last_line_without_newline_is_read(tmp_path, content, n):
    path = tmp_path / "h.csv"
    path.write_bytes(content)
    reviews, rejects = read_all(path, Columns("review", "id"))
    assert len(reviews) == n and len(rejects) == 0


def test_a_header_longer_than_64_kb_works(tmp_path):
    names = [f"extra_column_{i:05d}" for i in range(5000)]  # about 100 KB
    path = tmp_path / "wide.csv"
    path.write_text(",".join([*names, "id", "review"]) + "\n" + ",".join(["x"] * 5000 + ["r0", "Wide but fine"])
                    + "\n")
    assert path.stat().st_size > 100_000
    reviews, rejects = read_all(path, Columns("review", "id"))
    assert reviews[["review_id", "text"]].values.tolist() == [["r0", "Wide but fine"]] and rejects.empty


def test_fraction_is_the_share_of_the_file_read(tmp_path):
    path = tmp_path / "20k.csv"
    header = b"id,review,sentiment\n"
    path.write_bytes(header + good_lines(0, 20_000))
    fractions = [c.fraction for c in read_chunks(path, COLS, 2000)]
    assert len(fractions) == 10
    assert all(a < b for a, b in pairwise(fractions))
    assert fractions[0] < 0.2 and fractions[-1] == 1.0
    size = path.stat().st_size
    assert fractions == [len(header + good_lines(0, 2000 * k)) / size for k in range(1, 11)]  # exact bytes


# ------------------------------------------------------------------------------ clear errors


def test_a_directory_named_like_a_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.mkdir()
    with pytest.raises(InputError, match="is a directory") as e:
        read_all(path)
    assert str(path) in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its permissions")
def test_an_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "locked.csv"
    path.write_text("id,review\nr0,Good\n")
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        read_all(path, Columns("review", "id"))


def test_a_file_that_cannot_be_opened_is_a_clear_error(tmp_path):
    path = tmp_path / "loop.csv"
    path.symlink_to(path)  # opening it fails with ELOOP, for root too
    with pytest.raises(InputError, match="cannot open") as e:
        read_all(path, Columns("review", "id"))
    assert str(path) in str(e.value)


@pytest.mark.parametrize("cols, roles", [
    (Columns("review", "review"), "text and id"),
    (Columns("review", "id", "review"), "text and label"),
    (Columns("review", "id", "id"), "id and label"),
])
def test_one_column_in_two_roles_is_a_clear_error(tmp_path, cols, roles):
    path = tmp_path / "c.csv"
    path.write_text("id,review\nr0,Good\n")
    with pytest.raises(InputError, match=f"the {roles} columns must differ"):
        read_all(path, cols)


def test_a_mapped_column_named_twice_in_the_header_is_a_clear_error(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("id,review,review\nr0,One,Two\n")
    with pytest.raises(InputError, match="'review' appears 2 times"):
        read_all(path, Columns("review", "id"))


# ------------------------------------------------------------------------------------- Parquet


@pytest.mark.parametrize("column, type_name", [
    (pa.array([["a", "b"], ["c"]]), "list<element: string>"),
    (pa.array([{"x": "a"}, {"x": "b"}]), "struct<x: string>"),
])
def test_a_parquet_text_column_that_is_not_scalar_is_a_clear_error(tmp_path, column, type_name):
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": ["r0", "r1"], "review": column}), path)
    with pytest.raises(InputError) as e:
        read_all(path, Columns("review", "id"))
    assert str(path) in str(e.value) and "'review'" in str(e.value) and type_name in str(e.value)


def test_a_parquet_float_id_is_a_clear_error(tmp_path):
    path = tmp_path / "float.parquet"
    pq.write_table(pa.table({"id": [1.5, 2.5], "review": ["Good", "Bad"]}), path)
    with pytest.raises(InputError, match="'id'.*double"):
        read_all(path, Columns("review", "id"))


def test_parquet_scalar_columns_of_every_accepted_type_are_read(tmp_path):
    path = tmp_path / "types.parquet"
    pq.write_table(pa.table({
        "id": pa.array([10, 11, 12, 13], pa.int32()),
        "review": pa.array([b"Good <br />film", "Caf\u00e9".encode(), b"Caf\xe9", b"Fine"], pa.binary()),
        "sentiment": pa.array(["pos", "neg", "pos", "neg"]).dictionary_encode(),  # a pandas categorical
        "stars": pa.array([5.0, 1.0, 3.0, None]),  # float64: pandas' int column with a missing value
    }), path)
    reviews, rejects = read_all(path, Columns("review", "id", "sentiment"))
    assert reviews[["review_id", "text", "label"]].values.tolist() == [
        ["10", "Good film", "positive"], ["11", "Caf\u00e9", "negative"], ["13", "Fine", "negative"]]
    assert rejects[["location", "review_id"]].values.tolist() == [["row 2", "12"]]
    assert rejects.loc[0, "reason"].startswith("not valid UTF-8")
    reviews, rejects = read_all(path, Columns("review", "id", "stars", "stars"))
    assert reviews["label"].tolist() == ["positive", "negative"]
    assert rejects["reason"].str[:16].tolist() == ["not valid UTF-8:", "empty label in c"]


def test_a_corrupt_parquet_row_group_is_counted_rejects_and_the_others_are_read(tmp_path):
    path = tmp_path / "corrupt.parquet"
    table = pa.table({"id": [f"r{i}" for i in range(300)], "review": [f"Review {i} was good" for i in range(300)]})
    pq.write_table(table, path, row_group_size=100)
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(1)  # the review column of rows 100-199
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset
    data[start:start + 16] = b"\xff" * 16  # the page header: cannot be decoded
    path.write_bytes(bytes(data))
    reviews, rejects = read_all(path, Columns("review", "id"), chunk_rows=64)
    assert reviews["review_id"].tolist() == [f"r{i}" for i in (*range(100), *range(200, 300))]
    assert reviews["source_row"].tolist() == [*range(100), *range(200, 300)]
    assert rejects["location"].tolist() == [f"row {i}" for i in range(100, 200)]
    assert all(r.startswith("unreadable Parquet data") for r in rejects["reason"])


def test_a_parquet_file_with_a_corrupt_footer_is_a_clear_error(tmp_path):
    path = tmp_path / "footer.parquet"
    pq.write_table(pa.table({"id": ["r0"], "review": ["Good"]}), path)
    data = bytearray(path.read_bytes())
    data[-40:-8] = b"\xff" * 32
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a readable Parquet file") as e:
        read_all(path, Columns("review", "id"))
    assert str(path) in str(e.value)


# ---------------------------------------------------------------------------------- reading ahead


def test_reading_ahead_in_a_child_gives_the_same_chunks_and_the_same_errors(tmp_path):
    """core.readers.ahead (forced into a child process: min_bytes=0) yields read_chunks' chunks, rejects and
    fractions in order; an error the reader raises comes back with its type and message; closing the
    iterator early stops the child."""
    path = tmp_path / "r.csv"
    path.write_bytes(b"id,review,sentiment\n" + good_lines(0, 40) + b'r40,"unclosed,positive\n'
                     + b"r41,only two\n" + good_lines(42, 30) + b"r1,A duplicate id,positive\n")
    direct = list(read_chunks(path, COLS, 7))
    ahead = list(read_ahead(path, COLS, 7, min_bytes=0))
    assert len(ahead) == len(direct) > 5 and readers_alive() == []
    for a, d in zip(ahead, direct, strict=True):
        pd.testing.assert_frame_equal(a.reviews, d.reviews)
        pd.testing.assert_frame_equal(a.rejects, d.rejects)
        assert a.fraction == d.fraction
    assert sum(len(c.rejects) for c in ahead) >= 2

    wrong = Columns("body", "id", "sentiment")
    with pytest.raises(InputError) as direct_error:
        list(read_chunks(path, wrong, 7))
    with pytest.raises(InputError) as child_error:
        list(read_ahead(path, wrong, 7, min_bytes=0))
    assert str(child_error.value) == str(direct_error.value)

    chunks = read_ahead(path, COLS, 2, min_bytes=0, depth=1)
    next(chunks)
    assert len(readers_alive()) == 1
    chunks.close()
    assert readers_alive() == []

    long = tmp_path / "long.csv"  # more chunks than the pipe holds: the child is still reading when killed
    long.write_bytes(b"id,review,sentiment\n" + good_lines(0, 20_000))
    chunks = read_ahead(long, COLS, 2, min_bytes=0, depth=1)
    next(chunks)
    os.kill(readers_alive()[0], signal.SIGKILL)
    with pytest.raises(InputError, match="the process reading it stopped"):
        list(chunks)


def readers_alive() -> list[int]:
    """This process's children that run core.readers.ahead and are not dead (zombies count as dead)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"core.readers.ahead" in cmdline:
            alive.append(int(stat.parent.name))
    return alive
