"""HTTP routes, one module per domain. Routes parse input, call a service, render or return JSON.

Each page module defines `bp`; the JSON API is one blueprint (`app.web.api.bp`, `/api`) whose routes
live in app/web/api/, one module per domain, each adding its routes to `api.bp` as it is imported (the
chat, publish and OpenAPI routes still do so from their page modules).
"""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Register every blueprint, pages in the order their routes should match, then the JSON API."""
    from app.web import (
        account,
        api,
        auth,
        billing,
        chat,
        credits,
        github_import,
        github_sync,
        observability,
        openapi,
        pages,
        projects,
        publish,
        repo_access,
        workspace,
        workspace_usage,
        workspaces,
    )
    from app.web.api import account as account_api  # noqa: F401 - each module adds its routes to api.bp
    from app.web.api import billing as billing_api  # noqa: F401
    from app.web.api import chat as chat_api  # noqa: F401
    from app.web.api import credits as credits_api  # noqa: F401
    from app.web.api import projects as projects_api  # noqa: F401
    from app.web.api import workspaces as workspaces_api  # noqa: F401

    for blueprint in (
        pages.bp,
        auth.bp,
        account.bp,
        billing.bp,
        credits.bp,
        publish.bp,
        github_import.bp,
        repo_access.bp,
        github_sync.bp,
        projects.bp,
        workspace.bp,
        observability.bp,
        openapi.bp,
        chat.bp,
        workspaces.bp,
        workspace_usage.bp,
    ):
        app.register_blueprint(blueprint)
    app.register_blueprint(api.bp)
