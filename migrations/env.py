"""Alembic environment for Flask-Migrate.

Migrations run on MySQL/MariaDB (production, tests) and SQLite (the embedded default): SQLite alters
tables in batch mode, and autogenerate renders our UTC datetime type as the concrete column types.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
# Inside the app (create_app installed Sorya's log handler: app/logs.py) keep its logging as it is:
# fileConfig would replace the root handler and level, silencing the app's own lines afterwards.
if (config.config_file_name and not getattr(config, "sorya_quiet", False)
        and not any(getattr(h, "_sorya_handler", False) for h in logging.getLogger().handlers)):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def get_engine():
    return current_app.extensions["migrate"].db.engine


config.set_main_option(
    "sqlalchemy.url", get_engine().url.render_as_string(hide_password=False).replace("%", "%%")
)
target_db = current_app.extensions["migrate"].db


def render_item(type_, obj, autogen_context):
    """Render the model-only UTCDateTime as the column types it creates on each dialect."""
    from app.models.base import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from sqlalchemy.dialects import mysql")
        return "sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')"
    return False


def compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type):
    """MariaDB reflects JSON as LONGTEXT; that is the same column, not a change."""
    import sqlalchemy as sa

    if isinstance(metadata_column.type, sa.JSON) and context.dialect.name in ("mysql", "mariadb"):
        return False
    return None  # Alembic's default comparison for everything else


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_db.metadata,
                      literal_binds=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args["compare_type"] = compare_type
    conf_args["render_as_batch"] = get_engine().dialect.name == "sqlite"
    with get_engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_db.metadata,
            render_item=render_item,
            **conf_args,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
