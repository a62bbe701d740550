"""The OpenAPI document matches the app: every /api route documented, every documented route served."""

from __future__ import annotations

import re

from app.web.openapi import build_openapi_document

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def app_api_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        operations.update((method, path) for method in rule.methods & HTTP_METHODS)
    return operations


def documented_operations() -> set[tuple[str, str]]:
    paths = build_openapi_document()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def test_the_document_is_served_and_valid_openapi_3_1(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json
    assert document["openapi"] == "3.1.0"
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "default" in operation["responses"], (method, path)  # the contract's error shape
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path, (path, parameter["name"])


def test_every_api_route_of_the_app_is_documented(app):
    undocumented = app_api_operations(app) - documented_operations()
    assert not undocumented, f"add these to app/web/openapi/paths.py (or workspaces.py): {sorted(undocumented)}"


def test_every_documented_route_exists_in_the_app(app):
    missing = documented_operations() - app_api_operations(app)
    assert not missing, f"documented but not served: {sorted(missing)}"


def test_the_document_describes_token_scopes_and_expiry():
    document = build_openapi_document()
    bearer = document["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert "`read`" in bearer and "403" in bearer and "expired" in bearer
    assert "read" in document["info"]["description"] and "expired" in document["info"]["description"]
