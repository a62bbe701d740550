"""`flask tokens create LOGIN --name NAME`: a personal API token for a script, printed once."""

from __future__ import annotations

import click

from app.cli.groups import tokens
from app.extensions import db
from app.services import accounts, api_tokens
from app.services.errors import DomainError


@tokens.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What the token is for, shown on the account page.")
def create(login: str, name: str) -> None:
    """Print a new API token for LOGIN on stdout (only the token, so scripts can capture it)."""
    try:
        user = accounts.find_user_by_login(db.session, login)
        if not user.is_active:
            raise click.ClickException(f"{user.login} is disabled; enable the account before creating tokens.")
        created = api_tokens.create_token(db.session, user_id=user.id, name=name)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(created.plaintext)
    click.echo(f"Created token “{created.token.name}” for {user.login}; it will not be shown again.", err=True)
