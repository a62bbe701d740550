"""Routes send no SQL: every query lives in app/services/ (STYLE.md, "Layers and what each may touch")."""

from __future__ import annotations

import re
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parents[2] / "app" / "web"
# `session.get(Model, id)` loads a row as surely as a query does: routes ask a service for it.
SQL_CALLS = re.compile(r"\bselect\(|\.query\(|\bexecute\(|\bsession\.get\(")


def sql_lines(root: Path) -> list[str]:
    """`file:line: text` of every line under `root` that builds or runs a query."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if SQL_CALLS.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(root.parents[1])}:{number}: {line.strip()}")
    return found


def test_the_check_finds_a_query_where_there_is_one(tmp_path):
    web = tmp_path / "app" / "web"
    (web / "api").mkdir(parents=True)
    (web / "pages.py").write_text("def view():\n    return render_template('x.html')\n")
    (web / "api" / "things.py").write_text(
        "rows = db.session.scalars(select(Thing))\n# a comment about select(...) is fine\n"
        "db.session.query(Thing).all()\nconnection.execute(text('SELECT 1'))\n"
        "thing = db.session.get(Thing, 1)\n"
    )
    assert sql_lines(web) == [
        "app/web/api/things.py:1: rows = db.session.scalars(select(Thing))",
        "app/web/api/things.py:3: db.session.query(Thing).all()",
        "app/web/api/things.py:4: connection.execute(text('SELECT 1'))",
        "app/web/api/things.py:5: thing = db.session.get(Thing, 1)",
    ]


def test_no_route_module_sends_sql():
    offending = sql_lines(WEB_DIR)
    assert not offending, "Move these queries into a service function in app/services/:\n" + "\n".join(offending)
