"""HTTP routes, one module per domain. Routes parse input, call a service, render or return JSON.

A domain module defines `bp` (its pages) and may add JSON routes to `app.web.api.bp` when imported;
every module is imported before any blueprint is registered, so the API blueprint is complete.
"""

from __future__ import annotations

import importlib

from flask import Flask

# Page blueprints, in the order their routes should match.
DOMAIN_MODULES: tuple[str, ...] = (
    "app.web.pages",
    "app.web.auth",
    "app.web.account",
    "app.web.billing",
    "app.web.credits",
    "app.web.publish",
    "app.web.projects",
    "app.web.observability",
    "app.web.openapi",
    "app.web.chat",
)
# Modules that only add JSON routes to `app.web.api.bp`.
API_MODULES: tuple[str, ...] = ("app.web.api.chat",)


def register_blueprints(app: Flask) -> None:
    from app.web import api

    modules = [importlib.import_module(name) for name in DOMAIN_MODULES]
    for name in API_MODULES:
        importlib.import_module(name)
    for module in modules:
        app.register_blueprint(module.bp)
    app.register_blueprint(api.bp)
