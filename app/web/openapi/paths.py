"""The paths of the OpenAPI document: every /api route of the contract, with its operations."""

from __future__ import annotations

from typing import Any

from app.web.openapi.blocks import (
    EVENT_STREAM,
    JSON,
    REPO_ACCESS,
    SSE_EVENT,
    STRING,
    json_body,
    ok,
    operation,
    path_id,
    query_int,
    ref,
)

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
