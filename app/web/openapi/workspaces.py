"""Workspaces in the OpenAPI document (teams, members, a team's pool and usage), and the `workspace_id`
fields they add to projects."""

from __future__ import annotations

from app.web.openapi.blocks import (
    CREDITS,
    ID,
    INTEGER,
    NULLABLE_ID,
    STRING,
    json_body,
    obj,
    ok,
    operation,
    path_id,
    query_int,
    ref,
)
from app.web.openapi.paths import PATHS
from app.web.openapi.schemas import SCHEMAS

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
