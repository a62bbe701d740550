"""Operator commands (`flask --app wsgi <group> <command>`), thin like routes: parse, call a service, print."""

from __future__ import annotations

import importlib

from flask import Flask

# Each module adds its commands to a group of app.cli.groups when imported.
COMMAND_MODULES: tuple[str, ...] = (
    "app.cli.users",
    "app.cli.tokens",
    "app.cli.billing",
    "app.cli.credits",
    "app.cli.jobs",
    "app.cli.keys",
)


def register_cli(app: Flask) -> None:
    from app.cli import groups

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    for group in groups.ALL:
        app.cli.add_command(group)
