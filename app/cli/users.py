"""`flask users list`, `flask users disable LOGIN` and `flask users enable LOGIN`."""

from __future__ import annotations

import click

from app.cli.groups import users
from app.errors import NotFound
from app.extensions import db
from app.services import accounts


@users.command("list")
def list_users() -> None:
    """One line per user: id, login, plan, balance (tab-separated; a fifth column marks disabled ones)."""
    for summary in accounts.list_users(db.session):
        columns = [str(summary.id), summary.login, summary.plan, str(summary.balance)]
        if summary.disabled:
            columns.append("disabled")
        click.echo("\t".join(columns))


@users.command("disable")
@click.argument("login")
def disable(login: str) -> None:
    """Block sign-in, sessions and API tokens for LOGIN, keeping their data."""
    user = _for_login(accounts.disable_user, login)
    click.echo(f"Disabled {user.login} (id {user.id}): sign-in, sessions and API tokens are refused.")


@users.command("enable")
@click.argument("login")
def enable(login: str) -> None:
    """Let a disabled LOGIN sign in and use their API tokens again."""
    user = _for_login(accounts.enable_user, login)
    click.echo(f"Enabled {user.login} (id {user.id}).")


def _for_login(action, login: str):
    try:
        return action(db.session, login)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
