"""HTTP routes, one blueprint per domain. Routes parse input, call a service, render or return JSON."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.web import api, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
