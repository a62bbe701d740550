"""The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`), built from the contract.

It describes every route of shared/CONTRACT.md's JSON API with its request body, its success response
and the contract's error shape (`default`: any error status answers `Error`). Objects allow extra
properties: the contract lets a response gain fields, never lose or rename one, so the schemas list
what is required and leave the rest open.

Kept honest by tests/integration/test_openapi.py (every /api route of the app is documented and every
documented route exists) and by the schemathesis run in tests/integration/test_api_fuzz.py, which
calls the running app with generated requests and checks each response against this document.
Adding an /api route means adding it here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.web import api
from app.web.openapi import workspaces  # noqa: F401  (adds its paths and schemas)
from app.web.openapi.blocks import API_VERSION, OPENAPI_VERSION
from app.web.openapi.paths import PATHS
from app.web.openapi.schemas import SCHEMAS

# No pages of its own: the document is an /api route. The empty blueprint keeps the domain-module shape.
bp = Blueprint("openapi", __name__)


def build_openapi_document(server_url: str = "/") -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Sorya API",
            "version": API_VERSION,
            "description": "Chat with a model that writes code, keep its files as snapshots, publish them "
            "to GitHub; every token metered in credits. Authenticate with a personal API token "
            "(`Authorization: Bearer ...`, from `flask tokens create` or the account page) or the browser "
            "session (unsafe methods then need the X-CSRFToken header). A token has a scope: `write` (the "
            "default) may call every operation its user may; `read` may only use GET (and HEAD/OPTIONS), "
            "anything else is 403 `forbidden`. A token may expire: an expired token is 401 "
            "`unauthenticated`, and the message says it expired. Tokens work on `/api` only, never on "
            "the HTML pages and their forms.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (`sorya_...`), for /api only. Scope `read`: GET, "
                    "HEAD and OPTIONS only (other methods: 403 `forbidden`); scope `write` (default): every "
                    "operation. An expired, revoked or unknown token: 401 `unauthenticated` (a revocation takes "
                    "effect at once in the process that made it, within 5 seconds in every other).",
                },
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }


@api.bp.get("/openapi.json")
def openapi_document():
    return jsonify(build_openapi_document())
