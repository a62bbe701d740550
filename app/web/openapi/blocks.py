"""The building blocks of the OpenAPI document: schema shorthands, responses, parameters, operations."""

from __future__ import annotations

from typing import Any

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0"

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with these required properties (and optional ones), open to added fields."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


INTEGER = {"type": "integer"}
ID = {"type": "integer", "minimum": 1}
CREDITS = {"type": "integer"}
STRING = {"type": "string"}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_ID = {"type": ["integer", "null"]}
NEXT_BEFORE = {"type": ["integer", "null"], "description": "Pass as `before` for the next page; null at the end."}


def json_body(schema_name: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": ref(schema_name)}}}


def ok(schema_name: str, status: str = "200", description: str = "Success") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": ref(schema_name)}}}}


ERRORS = {
    "default": {
        "description": "Any error: the contract's error object with the fitting status "
        "(429 carries Retry-After).",
        "content": {JSON: {"schema": ref("Error")}},
    }
}
# Repository calls before the person granted repository access (OAuth mode; sign-in asks for less).
REPO_ACCESS = {
    "403": {
        "description": "`github_scope_required`: GitHub repository access is not granted yet. The error carries "
        "`scope` (`repo` or `public_repo`) and `consent_url`: GitHub's second consent, which returns to the "
        "page of this action. With a GitHub App configured, a repository without the app answers 409 "
        "`github_app_not_installed` with `install_url` instead.",
        "content": {JSON: {"schema": ref("Error")}},
    }
}
# One server-sent event as a client's parser hands it over (schemathesis checks each event against this).
SSE_EVENT = {"type": "object", "properties": {"event": {"type": "string"}, "data": {"type": "string"},
                                              "id": {"type": "string"}}}
EVENT_STREAM = {
    "200": {
        "description": "The reply's server-sent events: start, delta*, then done or error; each with an id:.",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }
}


def path_id(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": ID}


def query_int(name: str, description: str, *, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": 1}
    if maximum:
        schema["maximum"] = maximum
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def operation(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
              parameters: list[dict[str, Any]] | None = None, public: bool = False,
              tag: str = "api") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**responses, **ERRORS}}
    if body:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    if public:
        op["security"] = []
    return op
