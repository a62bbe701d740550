"""`flask workspaces list` (id, name, kind, members, balance) and `flask usage report --workspace --month`."""

from __future__ import annotations

from datetime import date, timedelta

import click

from app.cli.credits import team_account_by_name
from app.cli.groups import usage as usage_group
from app.cli.groups import workspaces as workspaces_group
from app.extensions import db
from app.services.workspaces import pool, usage


@workspaces_group.command("list")
def list_workspaces() -> None:
    """One line per workspace: id, name, kind, active members, balance (tab-separated)."""
    for row in pool.workspace_lines(db.session):
        click.echo(f"{row.id}\t{row.name}\t{row.kind}\t{row.members}\t{row.balance}")


@usage_group.command("report")
@click.option("--workspace", "workspace_name", required=True, help="The team workspace's name.")
@click.option("--month", required=True, help="YYYY-MM (UTC).")
def usage_report(workspace_name: str, month: str) -> None:
    """Per member, project and model: replies, tokens in and out, credits (tab-separated)."""
    try:
        start = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise click.UsageError(f"--month must look like 2026-12, not {month!r}.") from None
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    account_id = team_account_by_name(workspace_name)
    for group_by in ("member", "project", "model"):
        click.echo(f"# by {group_by}")
        for row in usage.account_usage(db.session, account_id=account_id, start=start, end=end, group_by=group_by):
            click.echo(f"{row.key}\t{row.replies}\t{row.tokens_in}\t{row.tokens_out}\t{row.credits}")
