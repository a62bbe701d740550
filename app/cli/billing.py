"""`flask billing sync LOGIN` and `flask billing replay EVENT_ID`: operators repairing billing state."""

from __future__ import annotations

import click

from app import runtime
from app.cli.groups import billing as billing_group
from app.errors import DomainError
from app.extensions import db
from app.services import billing


@billing_group.command("sync")
@click.argument("login")
def sync(login: str) -> None:
    """Re-read LOGIN's Stripe customer, subscriptions and paid invoices, and repair local state."""
    settings = billing.BillingSettings.from_config(runtime.settings())
    try:
        report = billing.sync_customer(db.session, billing.stripe_gateway(settings), settings, login)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    if report.customer_id is None:
        click.echo(f"{login}: no Stripe customer; plan {report.plan}")
        return
    click.echo(f"{login}: customer {report.customer_id}; plan {report.plan}; "
               f"credits granted now {report.credits_granted}")
    for subscription_id, plan, status in report.subscriptions:
        click.echo(f"  {subscription_id} {plan} {status}")


@billing_group.command("replay")
@click.argument("event_id")
def replay(event_id: str) -> None:
    """Fetch EVENT_ID from Stripe again and process it (idempotent: nothing is granted twice)."""
    settings = billing.BillingSettings.from_config(runtime.settings())
    try:
        outcome = billing.replay_event(db.session, billing.stripe_gateway(settings), settings, event_id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    detail = f" ({outcome.detail})" if outcome.detail else ""
    click.echo(f"{outcome.event_id} {outcome.type}: {outcome.status}; "
               f"credits granted now {outcome.credits_granted}{detail}")
