"""`flask workspaces list` (id, name, kind, members, balance); `flask usage ...` is `app/cli/usage.py`."""

from __future__ import annotations

import click

from app.cli.groups import workspaces as workspaces_group
from app.extensions import db
from app.services.workspaces import pool


@workspaces_group.command("list")
def list_workspaces() -> None:
    """One line per workspace: id, name, kind, active members, balance (tab-separated)."""
    for row in pool.workspace_lines(db.session):
        click.echo(f"{row.id}\t{row.name}\t{row.kind}\t{row.members}\t{row.balance}")
