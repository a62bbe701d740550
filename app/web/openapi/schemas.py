"""The component schemas of the OpenAPI document (request bodies and responses, by name)."""

from __future__ import annotations

from typing import Any

from app.web.openapi.blocks import (
    CREDITS,
    ID,
    INTEGER,
    NEXT_BEFORE,
    NULLABLE_ID,
    NULLABLE_STRING,
    STRING,
    TIMESTAMP,
    obj,
    ref,
)

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
