"""A team's usage page stays as fast on a ledger of 1,000,000 entries as on one of 10,000.

A team of 50 members, each working in two of the team's ten projects with one or two models, spends over
30 days. The ledger is filled with multi-row INSERTs (a million service posts would take hours) and the
daily rollups are rebuilt from it by `flask usage reconcile --fix`'s function (timed: the figure an
operator waits for after a migration). Then the page's queries (`team_page.team_usage_page`: the table,
the chart and the member list) are timed for the default view (everyone by member, the last 30 days) and
a drill-down (one member by project). Target: each within 1.5x of its time at 10,000 entries.

The baseline, measured at the same sizes in the same run, is the cheapest possible ledger scan: one SQL
`GROUP BY member_id` over the range's chat entries (credits and replies only; the page also needs tokens,
which live in the entries' JSON). The run checks that both give the same credits and replies per member.

The rollups' size is bounded by members x projects x models x days (here at most 50 x 2 x 2 x 30 =
6,000 rows), not by the ledger: the rows the page reads are printed at each size.

Runs against a dedicated MariaDB database (`BENCH_DATABASE_URL`, default `sorya_bench_usage`), rebuilt
from the migrations at each run and dropped at its end.

    .venv/bin/python bench/usage_report.py [--quick]      # --quick: 10,000 and 100,000 entries
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from bench.common import Report, parse_args  # noqa: E402
from bench.ledger_balance import build_app, drop_database, recreate_database, typical_seconds  # noqa: E402

DEFAULT_BENCH_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_bench_usage?charset=utf8mb4"
SMALL_ENTRIES = 10_000
LARGE_ENTRIES = 1_000_000
QUICK_LARGE_ENTRIES = 100_000
MEMBERS = 50
PROJECTS = 10
MODELS = ("gpt-5", "gpt-5-mini", "o4-mini")
DAYS = 30
ROWS_PER_INSERT = 5_000
PAGE_READS = 60
BASELINE_READS_SMALL = 30
BASELINE_READS_LARGE = 2  # a scan of a million entries takes a minute on this shared machine


def size_label(entries: int) -> str:
    return f"{entries // 1_000_000}m" if entries % 1_000_000 == 0 else f"{entries // 1000}k"


def build_team(session) -> dict:
    """An owner, 50 members and ten projects in one team with a pool; the team's ids."""
    from app.models import User
    from app.services import credits, projects, workspaces

    owner = User(login="bench-owner", name="Owner")
    session.add(owner)
    session.commit()
    team = workspaces.create_team(session, user_id=owner.id, name="Bench team")
    members = []
    for number in range(MEMBERS):
        person = User(login=f"member-{number:02d}", name="Member")
        session.add(person)
        session.commit()
        workspaces.add_member(session, user_id=owner.id, workspace_id=team.id, login=person.login)
        members.append(person.id)
    project_ids = [projects.create_project(session, user_id=owner.id, name=f"project {n}", workspace_id=team.id).id
                   for n in range(PROJECTS)]
    credits.grant_credits(session, user_id=team.account_user_id, amount=10**11, note="bench pool",
                          idempotency_key="bench:pool")
    return {"owner": owner.id, "team": team.id, "pool": team.account_user_id, "members": members,
            "projects": project_ids}


def entry_row(team: dict, number: int, today: datetime) -> tuple:
    """The number-th chat charge: its member, one of that member's two projects and models, a day of 30."""
    member_index = number % MEMBERS
    project = team["projects"][(member_index + 3 * ((number // MEMBERS) % 2)) % PROJECTS]
    model = MODELS[(member_index + (number // (MEMBERS * 2)) % 2) % len(MODELS)]
    status = "failed" if number % 37 == 0 else "stopped" if number % 53 == 0 else "complete"
    at = today - timedelta(days=(number // 7) % DAYS, seconds=(number * 7919) % 86_000)
    cost = 10 + number % 40
    meta = json.dumps({"tokens_in": 800 + number % 500, "tokens_out": 200 + number % 300, "status": status,
                       "project_id": project, "usage_source": "provider"})
    return (team["pool"], team["members"][member_index], -cost, "chat", f"chat:bench:{number}", 0, model, meta,
            at.strftime("%Y-%m-%d %H:%M:%S.%f"))


def fill_ledger(session, team: dict, start: int, stop: int, today: datetime) -> None:
    connection = session.connection().connection.dbapi_connection
    statement = ("INSERT INTO ledger_entries (user_id, member_id, delta, reason, idempotency_key, balance_after, "
                 "model, meta, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
    with connection.cursor() as cursor:
        for chunk_start in range(start, stop, ROWS_PER_INSERT):
            # PyMySQL turns executemany of one INSERT ... VALUES into multi-row INSERT statements.
            cursor.executemany(statement, [entry_row(team, number, today)
                                           for number in range(chunk_start, min(chunk_start + ROWS_PER_INSERT, stop))])
    session.commit()


def ledger_scan(session, pool: int, since: datetime) -> dict[int, tuple[int, int]]:
    """The baseline: credits and replies per member straight from the ledger."""
    from app.models import LedgerEntry

    found = session.execute(
        select(LedgerEntry.member_id, func.sum(-LedgerEntry.delta), func.count())
        .where(LedgerEntry.user_id == pool, LedgerEntry.reason == "chat", LedgerEntry.created_at >= since)
        .group_by(LedgerEntry.member_id)).all()
    session.rollback()
    return {member: (int(spent), int(count)) for member, spent, count in found}


def measure(session, team: dict, report: Report, label: str, baseline_reads: int) -> dict[str, float]:
    from app.models import UsageDaily
    from app.services.usage import report as usage_report
    from app.services.usage import team_page

    today = datetime.now(UTC).date()
    everyone = usage_report.usage_query(start=today - timedelta(days=DAYS - 1), end=today)
    one_member = usage_report.usage_query(start=everyone.start, end=today, group_by="project",
                                          member_login="member-07")

    def page(query):
        def read():
            found = team_page.team_usage_page(session, user_id=team["owner"], workspace_id=team["team"], query=query)
            session.rollback()
            return found
        return read

    page_s = typical_seconds(page(everyone), PAGE_READS)
    drill_s = typical_seconds(page(one_member), PAGE_READS)
    since = datetime.combine(everyone.start, datetime.min.time(), tzinfo=UTC)
    scan_s = typical_seconds(lambda: ledger_scan(session, team["pool"], since), baseline_reads,
                             batches=min(baseline_reads, 5))
    shown = page(everyone)()
    logins = dict(zip((f"member-{n:02d}" for n in range(MEMBERS)), team["members"], strict=True))
    from_page = {logins[row.key]: (row.credits, row.replies) for row in shown.rows}
    if from_page != ledger_scan(session, team["pool"], since):
        raise SystemExit(f"at {label}: the page's credits and replies per member differ from the ledger's")
    rows = session.execute(select(func.count()).select_from(UsageDaily).where(
        UsageDaily.account_id == team["pool"], UsageDaily.day >= everyone.start)).scalar()
    session.rollback()
    print(f"{label}: {rows:,} rollup rows in the range; page {page_s * 1000:.2f} ms, drill-down "
          f"{drill_s * 1000:.2f} ms, ledger scan {scan_s * 1000:.1f} ms; credits and replies agree")
    report.compare(f"page_ms_{label}", page_s * 1000, scan_s * 1000, "ms", ratio_name=f"page_vs_ledger_scan_{label}")
    report.figures[f"drilldown_ms_{label}"] = round(drill_s * 1000, 4)
    report.figures[f"rollup_rows_{label}"] = rows
    return {"page": page_s, "drill": drill_s, "scan": scan_s}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    large = QUICK_LARGE_ENTRIES if args.quick else LARGE_ENTRIES
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL)
    recreate_database(url)
    application = build_app(url)

    from sqlalchemy import text

    from app.extensions import db
    from app.services.usage import reconcile

    report = Report("usage_report")
    now = datetime.now(UTC)
    with application.app_context():
        session = db.session
        team = build_team(session)
        times = {}
        filled = 0
        for size, baseline_reads in ((SMALL_ENTRIES, BASELINE_READS_SMALL), (large, BASELINE_READS_LARGE)):
            label = size_label(size)
            started = time.perf_counter()
            fill_ledger(session, team, filled, size, now)
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            rewritten = len(reconcile.reconcile_account(session, team["pool"], fix=True))
            rebuild_s = time.perf_counter() - started
            session.execute(text("ANALYZE TABLE ledger_entries, usage_daily"))
            session.rollback()
            print(f"{size:,} entries: filled {size - filled:,} in {fill_s:.1f} s; rollups rebuilt from the ledger "
                  f"in {rebuild_s:.1f} s ({rewritten:,} rows written)")
            report.figures[f"rollup_rebuild_s_{label}"] = round(rebuild_s, 3)
            filled = size
            times[label] = measure(session, team, report, label, baseline_reads)
        small, big = times.values()
        big_label = list(times)[1]
        for name, key in (("page", "page"), ("drilldown", "drill"), ("ledger_scan", "scan")):
            growth = big[key] / small[key]
            report.ratios[f"{name}_growth_10k_to_{big_label}"] = round(growth, 4)
            verdict = "" if name == "ledger_scan" else ("target <= 1.5" if growth <= 1.5 else "ABOVE TARGET 1.5")
            report.rows.append((f"{name} growth 10k -> {big_label}", f"{growth:.3f}x", "", verdict))
        db.session.remove()
        db.engine.dispose()
    drop_database(url)
    report.print()


if __name__ == "__main__":
    main()
