"""Operator commands (`flask --app wsgi <group> <command>`), thin like routes: parse, call a service, print."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Add the contract's command groups to `flask`. Each module below adds its commands to its group of
    app.cli.groups as it is imported, so a group is complete once its module is imported."""
    from app.cli import billing, credits, groups, jobs, keys, tokens, usage, users, workspaces  # noqa: F401 - see the docstring

    for group in (groups.users, groups.tokens, groups.billing, groups.credits, groups.jobs, groups.keys,
                  groups.workspaces, groups.usage):
        app.cli.add_command(group)
