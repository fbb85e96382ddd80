"""core.store is the one owner of SQL: no other module of core, jobs or dashboard imports DuckDB, runs a
statement on a connection, or carries SQL text. A query written outside it is a query written twice."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "core" / "store"
RUNS_SQL = {"execute", "executemany", "sql", "query", "register", "unregister", "from_query",
            "to_arrow_table", "fetchall", "fetchone", "fetchdf"}
SQL_TEXT = re.compile(r"\b(SELECT\s+[\w*(]|INSERT\s+INTO|CREATE\s+(TEMP\s+)?TABLE|DELETE\s+FROM|UPDATE\s+\w+\s+SET"
                      r"|ATTACH\s+'|COPY\s*\(|DROP\s+TABLE)")


def offences(path: Path) -> list[str]:
    """What in ``path`` speaks SQL: an import of duckdb, a call of a connection's statement method, SQL text."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "duckdb" for a in node.names):
            found.append(f"line {node.lineno}: imports duckdb")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "duckdb":
            found.append(f"line {node.lineno}: imports from duckdb")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNS_SQL:
            found.append(f"line {node.lineno}: calls .{node.func.attr}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
            found.append(f"line {node.lineno}: SQL text {SQL_TEXT.search(node.value).group(0)!r}")
    return found


def modules() -> list[Path]:
    files = [p for d in ("core", "jobs", "dashboard") for p in (ROOT / d).rglob("*.py")]
    return sorted(p for p in files if OWNER not in p.parents)


def test_no_module_outside_core_store_speaks_sql():
    assert len(modules()) > 30  # every module of core, jobs and dashboard is read
    bad = {str(p.relative_to(ROOT)): o for p in modules() if (o := offences(p))}
    assert not bad, bad


def test_the_check_sees_each_way_of_speaking_sql(tmp_path):
    """The check itself: each offence in a sample module is found, and ordinary code is not."""
    sample = tmp_path / "sample.py"
    sample.write_text('import duckdb\nfrom duckdb import connect\ncon.execute(q)\nrel = con.sql(q)\n'
                      'q = "SELECT review_id FROM reviews"\nd = "INSERT INTO t VALUES (1)"\n'
                      'ok = "select the model"\nfutures = pool.submit(f)\n')
    found = offences(sample)
    assert [f.split(":")[0] for f in found] == [f"line {n}" for n in (1, 2, 3, 4, 5, 6)], found
