"""`flask tokens create LOGIN --name NAME [--scope read|write] [--expires-days N]`: a personal API token
for a script, printed once."""

from __future__ import annotations

import click

from app.cli.groups import tokens
from app.errors import DomainError
from app.extensions import db
from app.models.users import TOKEN_SCOPE_READ, TOKEN_SCOPE_WRITE, TOKEN_SCOPES
from app.services import accounts, api_tokens


@tokens.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What the token is for, shown on the account page.")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), default=TOKEN_SCOPE_WRITE, show_default=True,
              help="read: GET requests only; write: everything the user may do through /api.")
@click.option("--expires-days", type=int, default=None,
              help=f"Days until the token stops working (1 to {api_tokens.MAX_TOKEN_LIFETIME_DAYS}); "
                   "never, without this option.")
def create(login: str, name: str, scope: str, expires_days: int | None) -> None:
    """Print a new API token for LOGIN on stdout (only the token, so scripts can capture it)."""
    try:
        user = accounts.find_user_by_login(db.session, login)
        if not user.is_active:
            raise click.ClickException(f"{user.login} is disabled; enable the account before creating tokens.")
        created = api_tokens.create_token(
            db.session, user_id=user.id, name=name, scope=scope, expires_in_days=expires_days
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(created.plaintext)
    access = "read-only (GET requests)" if scope == TOKEN_SCOPE_READ else "read and write"
    expiry = f"expires {created.token.expires_at:%Y-%m-%d %H:%M} UTC" if created.token.expires_at else "never expires"
    click.echo(
        f"Created token “{created.token.name}” for {user.login}: {access}, {expiry}. It will not be shown again.",
        err=True,
    )
