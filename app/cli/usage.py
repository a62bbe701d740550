"""`flask usage report --workspace --month` (the workspace usage page's table, for operators) and
`flask usage reconcile [--fix]` (the daily rollups against the ledger). Thin: parse, call a service, print."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import click

from app.cli.credits import team_account_by_name
from app.cli.groups import usage as usage_group
from app.extensions import db
from app.services.usage import reconcile, report

REPORT_COLUMNS = ("key", "replies", "tokens_in", "tokens_out", "credits", "failed_replies", "stopped_replies")


def month_range(month: str) -> tuple[date, date]:
    try:
        start = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise click.UsageError(f"--month must look like 2026-12, not {month!r}.") from None
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return start, end


@usage_group.command("report")
@click.option("--workspace", "workspace_name", required=True, help="The team workspace's name.")
@click.option("--month", required=True, help="YYYY-MM (UTC).")
def usage_report(workspace_name: str, month: str) -> None:
    """Per member, project and model: replies, tokens in and out, credits, failed and stopped replies
    (tab-separated; the same rows as the workspace's usage page)."""
    start, end = month_range(month)
    account_id = team_account_by_name(workspace_name)
    click.echo("# " + "\t".join(REPORT_COLUMNS))
    for group_by in ("member", "project", "model"):
        click.echo(f"# by {group_by}")
        query = report.usage_query(start=start, end=end, group_by=group_by)
        for row in report.account_usage(db.session, account_id=account_id, query=query):
            click.echo("\t".join(str(getattr(row, name)) for name in REPORT_COLUMNS))


def _amounts(amounts) -> str:
    if amounts is None:
        return "none"
    return " ".join(f"{name}={value}" for name, value in amounts.as_dict().items())


@usage_group.command("reconcile")
@click.option("--fix", is_flag=True, help="Rewrite the rows that differ from the ledger.")
def usage_reconcile(fix: bool) -> None:
    """Recompute the daily usage rollups from the ledger. Lists the rows that differ; exits 1 when some do
    (unless --fix rewrote them)."""
    drift = reconcile.reconcile_usage(db.session, fix=fix)
    for item in drift:
        key = item.key
        click.echo(f"account={key.account_id} day={key.day} member={key.member_id} project={key.project_id} "
                   f"model={key.model or '-'}: ledger {_amounts(item.expected)}; rollup {_amounts(item.stored)}")
    if not drift:
        click.echo("Usage rollups match the ledger.")
        return
    if fix:
        click.echo(f"Rewrote {len(drift)} rollup rows from the ledger.")
        return
    click.echo(f"{len(drift)} rollup rows differ from the ledger; `flask usage reconcile --fix` rewrites them.")
    sys.exit(1)
