"""`flask keys rotate`: re-encrypt every stored secret under the current ENCRYPTION_KEY."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app import runtime
from app.cli.groups import keys
from app.extensions import db
from app.services.keys import ROTATION_BATCH_SIZE, rotate_stored_secrets


@keys.command("rotate")
@click.option("--batch-size", default=ROTATION_BATCH_SIZE, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows re-sealed and committed together.")
@with_appcontext
def rotate(batch_size: int) -> None:
    """Re-encrypt every stored secret under the current ENCRYPTION_KEY (resumable: run it again after
    an interruption). Exits 1 when some value opens with none of the configured keys."""
    report = rotate_stored_secrets(db.session, runtime.keyring(), batch_size=batch_size)
    click.echo(
        f"examined {report.examined}, re-encrypted {report.resealed}, already current {report.current}, "
        f"failed {report.failed}"
    )
    if report.failed:
        for label, row_id in report.failed_ids:
            click.echo(f"cannot open {label} id={row_id}: add the key that sealed it to ENCRYPTION_OLD_KEYS "
                       "and run again", err=True)
        raise SystemExit(1)
