"""`flask credits ...`: grant, balance, reconcile, sweep. Thin: find the user, call the ledger, print."""

from __future__ import annotations

import sys
import uuid

import click
from sqlalchemy import select

from app.cli.groups import credits as credits_group
from app.errors import DomainError
from app.extensions import db
from app.jobs import run_sweeps_job
from app.models import User, Workspace
from app.services import credits


def user_by_login(login: str) -> User:
    user = db.session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No user with the login {login!r}.")
    return user


def team_account_by_name(name: str) -> int:
    """The pool account of the team workspace named `name` (exactly one)."""
    found = db.session.execute(select(Workspace.account_user_id).where(
        Workspace.name == name, Workspace.kind == "team")).scalars().all()
    if len(found) != 1:
        raise click.ClickException(f"No single team workspace named {name!r} ({len(found)} found).")
    return found[0]


# ignore_unknown_options: `grant alice -100` must read -100 as the amount, not as an unknown option.
@credits_group.command("grant", context_settings={"ignore_unknown_options": True})
@click.argument("login_or_amount")
@click.argument("amount", required=False)
@click.option("--workspace", "workspace_name", default=None,
              help="Grant to this team's pool instead: `grant --workspace NAME AMOUNT`.")
@click.option("--reason", "note", required=True, help="Why: shown to the user on their ledger.")
@click.option(
    "--idempotency-key",
    default=None,
    help="Reuse a key to make a retried grant a no-op (default: a fresh key for each invocation).",
)
def grant(login_or_amount: str, amount: str | None, workspace_name: str | None, note: str,
          idempotency_key: str | None) -> None:
    """Add AMOUNT credits to LOGIN, or with --workspace to a team's pool (negative to take credits back;
    the balance never goes below zero)."""
    login, raw_amount = (workspace_name, login_or_amount) if workspace_name else (login_or_amount, amount)
    if raw_amount is None or (workspace_name and amount is not None):
        raise click.UsageError("Usage: grant LOGIN AMOUNT, or grant --workspace NAME AMOUNT.")
    try:
        amount_credits = int(raw_amount)
    except ValueError:
        raise click.UsageError(f"AMOUNT must be a whole number, not {raw_amount!r}.") from None
    account_id = team_account_by_name(workspace_name) if workspace_name else user_by_login(login).id
    key = idempotency_key or f"admin:{uuid.uuid4()}"
    amount = amount_credits
    try:
        posting = credits.grant_credits(
            db.session, user_id=account_id, amount=amount, note=note, idempotency_key=key
        )
    except (ValueError, TypeError, DomainError) as exc:
        raise click.ClickException(str(exc)) from exc
    entry = posting.entry
    if not posting.created:
        click.echo(f"Already posted under {key}: entry {entry.id}, {entry.delta:+,} credits. Nothing changed.")
        return
    clamped = "" if entry.delta == amount else f" (asked {amount:+,}; stopped at a zero balance)"
    click.echo(
        f"{login}: {entry.delta:+,} credits{clamped}, balance now {entry.balance_after:,} "
        f"(entry {entry.id}, key {key})."
    )


@credits_group.command("balance")
@click.argument("login")
def balance(login: str) -> None:
    """Print LOGIN's balance as a bare integer."""
    user = user_by_login(login)
    click.echo(credits.credit_summary(db.session, user.id).balance)


@credits_group.command("reconcile")
def reconcile() -> None:
    """Check every balance against the sum of its ledger, and held credits against active holds.

    Exits 1 and lists the users that differ.
    """
    found = credits.find_discrepancies(db.session)
    if not found:
        click.echo("All balances match their ledgers, and held credits match active holds.")
        return
    ids = [item.user_id for item in found]
    logins = dict(db.session.execute(select(User.id, User.login).where(User.id.in_(ids))).all())
    for item in found:
        problems = []
        if item.balance != item.ledger_sum:
            problems.append(f"balance {item.balance} but ledger sums to {item.ledger_sum}")
        if item.held != item.active_holds:
            problems.append(f"held {item.held} but active holds sum to {item.active_holds}")
        click.echo(f"{item.user_id}\t{logins.get(item.user_id, '(no account)')}\t" + "; ".join(problems))
    click.echo(f"{len(found)} user(s) differ.", err=True)
    sys.exit(1)


@credits_group.command("sweep")
def sweep() -> None:
    """Release expired holds and repair what crashed processes left behind."""
    for label, count in run_sweeps_job(db.session).items():
        click.echo(f"{label}: {count}")
