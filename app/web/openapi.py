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

# No pages of its own: the document is an /api route. The empty blueprint keeps the domain-module shape.
bp = Blueprint("openapi", __name__)

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

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$",
                             "examples": ["invalid_request", "not_found", "insufficient_credits"]},
                    "message": {"type": "string", "minLength": 1},
                },
                {"fields": {"type": "object", "additionalProperties": {"type": "string"}}},
            )
        }
    ),
    "Me": obj(
        {
            "id": ID,
            "login": STRING,
            "name": {"type": ["string", "null"]},
            "email": NULLABLE_STRING,
            "plan": STRING,
            "credits": obj({"balance": CREDITS}),
        }
    ),
    "Credits": obj({"balance": CREDITS, "held": CREDITS}),
    "LedgerEntry": obj(
        {"id": ID, "delta": INTEGER, "reason": STRING, "created_at": TIMESTAMP, "meta": {"type": ["object", "null"]}}
    ),
    "LedgerPage": obj({"entries": {"type": "array", "items": ref("LedgerEntry")}, "next_before": NEXT_BEFORE}),
    "Project": obj(
        {
            "id": ID,
            "name": STRING,
            "status": STRING,
            "repo_full_name": NULLABLE_STRING,
            "last_snapshot_id": NULLABLE_ID,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
        {"description": NULLABLE_STRING},
    ),
    "ProjectList": obj({"projects": {"type": "array", "items": ref("Project")}}),
    "ProjectCreate": obj(
        {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
        {"description": {"type": "string"}},
    ),
    "ProjectUpdate": obj(
        {},
        {"name": {"type": "string", "minLength": 1, "maxLength": 200}, "description": {"type": "string"}},
    ),
    "ChatRequest": obj(
        {"message": {"type": "string", "minLength": 1}},
        {"project_id": ID, "model": STRING},
    ),
    "AssistantMessage": obj(
        {
            "id": ID,
            "role": {"const": "assistant"},
            "content": STRING,
            "model": NULLABLE_STRING,
            "tokens_in": INTEGER,
            "tokens_out": INTEGER,
            "cost": CREDITS,
        }
    ),
    "ChatReply": obj(
        {"message": ref("AssistantMessage"), "user_message_id": ID, "balance": CREDITS,
         "snapshot_id": {"type": ["integer", "null"],
                         "description": "The version the reply's files made; null when it wrote none or its edits "
                                        "failed."}},
        {"edit_errors": {"type": "array", "items": obj({"path": STRING, "reason": STRING},
                                                       {"block": INTEGER, "section": INTEGER})}},
    ),
    "EstimateRequest": obj({}, {"message": STRING, "project_id": ID, "model": STRING}),
    "SendEstimate": obj({
        "context_tokens": INTEGER, "max_completion_tokens": INTEGER,
        "hold_credits": {"type": "integer", "description": "The most the send costs: the hold it places now "
                                                           "(what a reply needs when `affordable` is false)."},
        "balance": CREDITS, "available": CREDITS, "affordable": {"type": "boolean"}, "model": STRING,
    }),
    "HistoryMessage": obj(
        {
            "id": ID,
            "role": {"enum": ["user", "assistant"]},
            "content": STRING,
            "project_id": NULLABLE_ID,
            "tokens_in": INTEGER,
            "tokens_out": INTEGER,
            "cost": CREDITS,
            "created_at": TIMESTAMP,
            "status": STRING,
        }
    ),
    "ChatHistory": obj({"messages": {"type": "array", "items": ref("HistoryMessage")}, "next_before": NEXT_BEFORE}),
    "StopResult": obj({"message_id": ID, "status": STRING}),
    "SnapshotFile": obj({"path": STRING, "size": INTEGER, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}),
    "Snapshot": obj(
        {
            "id": ID,
            "project_id": ID,
            "summary": {"type": ["string", "null"]},
            "files": {"type": "array", "items": ref("SnapshotFile")},
            "created_at": TIMESTAMP,
        }
    ),
    "SnapshotListItem": obj({"id": ID, "project_id": ID, "created_at": TIMESTAMP}),
    "SnapshotList": obj({"snapshots": {"type": "array", "items": ref("SnapshotListItem")}}),
    "SnapshotCreate": {
        "oneOf": [
            obj({"message_id": ID}),
            obj(
                {
                    "files": {
                        "type": "array",
                        "items": obj({"path": {"type": "string", "minLength": 1}, "content": STRING}),
                    }
                },
                {"summary": STRING},
            ),
        ]
    },
    "Preview": obj(
        {
            "snapshot_id": ID,
            "files": {
                "type": "array",
                "items": obj(
                    {"path": STRING, "size": INTEGER, "language": NULLABLE_STRING, "snippet": STRING,
                     "redacted": {"type": "boolean"}}
                ),
            },
        }
    ),
    "Diff": obj(
        {
            "added": {"type": "array"},
            "removed": {"type": "array"},
            "changed": {"type": "array", "items": obj({"path": STRING, "unified_diff": STRING})},
        }
    ),
    "RepoInit": obj({}, {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                         "private": {"type": "boolean"}, "description": {"type": "string"}}),
    "Repo": obj({"repo_full_name": STRING, "html_url": STRING}),
    "PushRequest": obj({}, {"snapshot_id": ID, "branch": STRING, "pull_request": {"type": "boolean"},
                            "title": STRING, "body": STRING}),
    "ImportRequest": obj({"repo": STRING}, {"branch": STRING}),
    "ImportResult": obj(
        {"id": ID, "name": STRING, "repo_full_name": NULLABLE_STRING, "last_snapshot_id": NULLABLE_ID,
         "skipped": {"type": "array", "items": obj({"path": STRING, "reason": STRING})}},
        {"commit_sha": STRING, "branch": STRING, "message": STRING, "status": STRING,
         "created_at": TIMESTAMP, "updated_at": TIMESTAMP},
    ),
    "PullResult": obj(
        {"snapshot_id": NULLABLE_ID, "commit_sha": STRING, "files_changed": INTEGER,
         "conflicts": {"type": "array", "items": STRING}},
        {"new_commits": INTEGER},
    ),
    # commit_sha and html_url are null while a push is still running (202, then poll its status_url).
    "PushResult": obj(
        {"commit_sha": NULLABLE_STRING, "html_url": NULLABLE_STRING, "files_changed": INTEGER},
        {"push_id": ID, "status": STRING, "branch": NULLABLE_STRING, "status_url": STRING,
         "flagged_paths": {"type": "array", "items": STRING}, "pull_request_url": NULLABLE_STRING},
    ),
    "Subscribe": obj({"plan": {"enum": ["basic", "pro"]}}),
    "RedirectUrl": obj({"url": {"type": "string", "minLength": 1}}),
}


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


PROJECT_ID = path_id("project_id", "The project's id.")
SNAPSHOT_ID = path_id("snapshot_id", "The snapshot's id.")
MESSAGE_ID = path_id("message_id", "The assistant reply's id.")
REPO_PROJECT_ID = path_id("project_id", "The project's id.")

PATHS: dict[str, dict[str, Any]] = {
    "/api/me": {"get": operation("The signed-in account", ok("Me"), tag="account")},
    "/api/credits": {"get": operation("Balance and credits on hold", ok("Credits"), tag="credits")},
    "/api/credits/ledger": {
        "get": operation(
            "Ledger entries, newest first", ok("LedgerPage"), tag="credits",
            parameters=[query_int("limit", "Entries per page.", maximum=100),
                        query_int("before", "Only entries with an id below this.")],
        )
    },
    "/api/projects": {
        "get": operation("Your projects", ok("ProjectList"), tag="projects"),
        "post": operation("Create a project", ok("Project", "201", "Created"), body=json_body("ProjectCreate"),
                          tag="projects"),
    },
    "/api/projects/{project_id}": {
        "get": operation("One project", ok("Project"), parameters=[PROJECT_ID], tag="projects"),
        "patch": operation("Rename or describe a project", ok("Project"), parameters=[PROJECT_ID],
                           body=json_body("ProjectUpdate"), tag="projects"),
        "delete": operation("Delete a project", {"204": {"description": "Deleted"}}, parameters=[PROJECT_ID],
                            tag="projects"),
    },
    "/api/chat": {
        "post": operation(
            "Send a message; the reply as JSON, or streamed with Accept: text/event-stream",
            {"200": {
                "description": "The finished reply (JSON), or its event stream.",
                "content": {JSON: {"schema": ref("ChatReply")}, "text/event-stream": {"schema": SSE_EVENT}},
            }},
            body=json_body("ChatRequest"), tag="chat",
        )
    },
    "/api/chat/history": {
        "get": operation(
            "Messages, oldest first within the page", ok("ChatHistory"), tag="chat",
            parameters=[query_int("project_id", "Only this project's messages (none: general chat)."),
                        query_int("limit", "Messages per page (default 100).", maximum=100),
                        query_int("before", "Only messages with an id below this.")],
        )
    },
    "/api/chat/estimate": {
        "get": operation("The most sending a draft would cost now (the hold the send places)", ok("SendEstimate"),
                         tag="chat", parameters=[
                             {"name": "message", "in": "query", "required": False, "schema": STRING},
                             query_int("project_id", "The project's conversation (none: general chat)."),
                             {"name": "model", "in": "query", "required": False, "schema": STRING}]),
        "post": operation("The most sending a draft would cost now (the hold the send places)", ok("SendEstimate"),
                          body=json_body("EstimateRequest"), tag="chat"),
    },
    "/api/chat/{message_id}/regenerate": {
        "post": operation(
            "Send the message that led to this reply again, as a new reply (only the conversation's latest; "
            "charged like any send); the reply as JSON, or streamed with Accept: text/event-stream",
            {"200": {
                "description": "The new finished reply (JSON), or its event stream.",
                "content": {JSON: {"schema": ref("ChatReply")}, "text/event-stream": {"schema": SSE_EVENT}},
            }},
            parameters=[MESSAGE_ID], tag="chat",
        )
    },
    "/api/chat/{message_id}/fix-edits": {
        "post": operation(
            "Fix the edits: send a follow-up naming this reply's failed edits (its files' current content goes "
            "in the prompt), charged like any send; 400 when the reply has no failed edits; the reply as JSON, "
            "or streamed with Accept: text/event-stream",
            {"200": {
                "description": "The new finished reply (JSON), or its event stream.",
                "content": {JSON: {"schema": ref("ChatReply")}, "text/event-stream": {"schema": SSE_EVENT}},
            }},
            parameters=[MESSAGE_ID], tag="chat",
        )
    },
    "/api/chat/{message_id}/stop": {
        "post": operation("Stop a reply that is being generated", ok("StopResult"), parameters=[MESSAGE_ID],
                          tag="chat")
    },
    "/api/chat/{message_id}/stream": {
        "get": operation(
            "Re-attach to a reply's event stream (send Last-Event-ID to resume)", EVENT_STREAM, tag="chat",
            parameters=[MESSAGE_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                                     "schema": {"type": "string"}}],
        )
    },
    "/api/projects/{project_id}/snapshots": {
        "get": operation("A project's snapshots, newest first", ok("SnapshotList"), parameters=[PROJECT_ID],
                         tag="snapshots"),
        "post": operation("Take a snapshot from a reply or from files (200: the reply's existing version)",
                          {**ok("Snapshot", "201", "Created"), **ok("Snapshot", "200", "Already a version")},
                          parameters=[PROJECT_ID], body=json_body("SnapshotCreate"), tag="snapshots"),
    },
    "/api/projects/{project_id}/preview": {
        "get": operation("Files of a snapshot (the latest by default)", ok("Preview"), tag="snapshots",
                         parameters=[PROJECT_ID, query_int("snapshot_id", "Which snapshot.")]),
    },
    "/api/snapshots/{snapshot_id}": {
        "get": operation("One snapshot with its files", ok("Snapshot"), parameters=[SNAPSHOT_ID], tag="snapshots"),
    },
    "/api/snapshots/{snapshot_id}/diff": {
        "get": operation("What changed between two snapshots", ok("Diff"), tag="snapshots",
                         parameters=[SNAPSHOT_ID, query_int("against", "The snapshot to compare with.")]),
    },
    "/api/snapshots/{snapshot_id}/archive": {
        "get": operation(
            "The snapshot's files as a zip",
            {"200": {"description": "A zip archive.",
                     "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
            parameters=[SNAPSHOT_ID], tag="snapshots",
        )
    },
    "/api/snapshots/{snapshot_id}/restore": {
        "post": operation("Make a snapshot's files the project's latest", ok("Snapshot", "201", "Created"),
                          parameters=[SNAPSHOT_ID], tag="snapshots"),
    },
    "/api/github/repo/{project_id}/init": {
        "post": operation("Create the project's GitHub repository", {**ok("Repo", "201", "Created"), **REPO_ACCESS},
                          parameters=[REPO_PROJECT_ID], body=json_body("RepoInit", required=False), tag="publish"),
    },
    "/api/github/repo/{project_id}/push": {
        "post": operation(
            "Push a snapshot (the latest by default) to the repository",
            {**ok("PushResult"), **ok("PushResult", "202", "Still running: poll status_url")},
            parameters=[REPO_PROJECT_ID], body=json_body("PushRequest", required=False), tag="publish",
        ),
    },
    "/api/projects/import": {
        "post": operation("Import a GitHub repository's branch as a new project",
                          {**ok("ImportResult", "201", "Created"), **REPO_ACCESS},
                          body=json_body("ImportRequest"), tag="publish"),
    },
    "/api/github/repo/{project_id}/pull": {
        "post": operation("Merge the commits GitHub has that Sorya lacks into a new version", ok("PullResult"),
                          parameters=[REPO_PROJECT_ID], tag="publish"),
    },
    "/api/github/repo/{project_id}/pushes/{push_id}": {
        "get": operation("A push's progress and outcome", ok("PushResult"), tag="publish",
                         parameters=[REPO_PROJECT_ID, path_id("push_id", "The push's id.")]),
    },
    "/api/billing/subscribe": {
        "post": operation("Start a Stripe Checkout for a plan", ok("RedirectUrl"), body=json_body("Subscribe"),
                          tag="billing"),
    },
    "/api/billing/portal": {
        "post": operation("Open the Stripe billing portal", ok("RedirectUrl"), tag="billing"),
    },
    "/api/webhooks/stripe": {
        "post": operation(
            "Stripe's signed events (authenticated by the Stripe-Signature header)",
            {"200": {"description": "Handled, or already known.", "content": {JSON: {"schema": {"type": "object"}}}}},
            body={"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
            public=True, tag="billing",
        )
    },
    "/api/openapi.json": {
        "get": operation(
            "This document",
            {"200": {"description": "The OpenAPI 3.1 document.", "content": {JSON: {"schema": {"type": "object"}}}}},
            public=True, tag="meta",
        )
    },
}


# Workspaces (teams, members, a team's pool): kept in one block so it merges beside other additions.
WORKSPACE_ID = path_id("workspace_id", "The workspace's id.")
MEMBER_LOGIN = {"name": "login", "in": "path", "required": True, "description": "The member's GitHub login.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,39}$"}}
NULLABLE_CAP = {"type": ["integer", "null"], "minimum": 0}
MEMBER = obj({"login": STRING, "role": {"enum": ["owner", "admin", "member"]}, "monthly_cap": NULLABLE_CAP,
              "status": {"enum": ["active", "pending"]}})
SCHEMAS.update({
    "Workspace": obj({"id": ID, "name": STRING, "kind": {"enum": ["personal", "team"]},
                      "role": {"enum": ["owner", "admin", "member"]}}),
    "WorkspaceList": obj({"workspaces": {"type": "array", "items": ref("Workspace")}}),
    "WorkspaceCreate": obj({"name": {"type": "string", "minLength": 1, "maxLength": 100}}),
    "Member": MEMBER,
    "MemberList": obj({"members": {"type": "array", "items": ref("Member")}}),
    "MemberAdd": obj({"login": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,39}$"}},
                     {"role": {"enum": ["admin", "member"]}, "monthly_cap": NULLABLE_CAP}),
    "MemberUpdate": obj({}, {"role": {"enum": ["owner", "admin", "member"]}, "monthly_cap": NULLABLE_CAP}),
    "PoolCredits": obj({"balance": CREDITS, "held": CREDITS, "members": {"type": "array", "items": obj(
        {"login": STRING, "spent_this_month": CREDITS, "monthly_cap": NULLABLE_CAP})}}),
    "PoolGrant": obj({"amount": {"type": "integer", "minimum": 1}}),
    "PoolBalance": obj({"balance": CREDITS}),
    "TeamUsage": obj({"rows": {"type": "array", "items": obj(
        {"key": STRING, "tokens_in": INTEGER, "tokens_out": INTEGER, "credits": CREDITS, "replies": INTEGER,
         "failed_replies": INTEGER, "stopped_replies": INTEGER})}}),
})
SCHEMAS["Project"]["properties"]["workspace_id"] = NULLABLE_ID
SCHEMAS["ProjectCreate"]["properties"]["workspace_id"] = ID
PATHS["/api/projects"]["get"]["parameters"] = [query_int("workspace_id", "Only this workspace's projects.")]
PATHS.update({
    "/api/workspaces": {
        "get": operation("Your workspaces", ok("WorkspaceList"), tag="workspaces"),
        "post": operation("Create a team workspace", ok("Workspace", "201", "Created"),
                          body=json_body("WorkspaceCreate"), tag="workspaces"),
    },
    "/api/workspaces/{workspace_id}/members": {
        "get": operation("A workspace's members and invitations", ok("MemberList"), parameters=[WORKSPACE_ID],
                         tag="workspaces"),
        "post": operation("Add a member by GitHub login", ok("Member", "201", "Created"), parameters=[WORKSPACE_ID],
                          body=json_body("MemberAdd"), tag="workspaces"),
    },
    "/api/workspaces/{workspace_id}/members/{login}": {
        "patch": operation("Change a member's role or monthly cap", ok("Member"),
                           parameters=[WORKSPACE_ID, MEMBER_LOGIN], body=json_body("MemberUpdate"), tag="workspaces"),
        "delete": operation("Remove a member, or leave", {"204": {"description": "Removed"}},
                            parameters=[WORKSPACE_ID, MEMBER_LOGIN], tag="workspaces"),
    },
    "/api/workspaces/{workspace_id}/usage": {
        "get": operation("A team's usage grouped by member, project, model or day (owners and admins)",
                         ok("TeamUsage"), tag="workspaces", parameters=[
                             WORKSPACE_ID,
                             {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                             {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                             {"name": "group_by", "in": "query", "required": False,
                              "schema": {"enum": ["member", "project", "model", "day"]}},
                             {"name": "member", "in": "query", "required": False, "schema": STRING,
                              "description": "Only this member's usage (GitHub login)."},
                             {"name": "sort", "in": "query", "required": False, "schema": {"enum": [
                                 "key", "replies", "failed_replies", "stopped_replies", "tokens_in", "tokens_out",
                                 "credits"]}},
                             {"name": "dir", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}}]),
    },
    "/api/workspaces/{workspace_id}/credits": {
        "get": operation("A team's pool and its members' spending this month", ok("PoolCredits"),
                         parameters=[WORKSPACE_ID], tag="workspaces"),
        "post": operation("Move credits from your balance to the team's pool", ok("PoolBalance", "201", "Created"),
                          parameters=[WORKSPACE_ID], body=json_body("PoolGrant"), tag="workspaces"),
    },
})


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
