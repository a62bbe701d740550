"""The workspace's project pane: the right half of a project's page (Preview · Files · Changes · Publish)
beside its conversation, with a version switcher. `?tab=` picks the tab and `?v=<snapshot_id>` the version
shown everywhere, so every view is a plain link that works without JavaScript; htmx swaps only the pane
(`HX-Target: project-pane`). The route that renders the page is the chat's (`app.web.chat`); this module
only builds the pane's context from the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request, url_for
from flask_login import current_user
from werkzeug.routing import BuildError

from app.errors import DomainError
from app.extensions import db
from app.models import Project, Snapshot
from app.services import access
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry, site
from app.web.api import int_arg
from app.web.snapshot_files import changed_paths, opening_file

TABS = ("preview", "files", "changes", "publish")
VERSIONS_LISTED = 50


@dataclass
class Pane:
    """What the project pane shows: the versions, the one shown, the tab, and that tab's content."""

    project: Project
    tab: str
    snapshots: list[Snapshot]
    shown: Snapshot | None
    is_latest: bool
    site_kind: str | None = None
    site_message: str | None = None
    entry_page: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def upload_url(self) -> str | None:
        """The upload form's address, or None while the server has no upload route (the form is left out)."""
        try:
            return url_for("workspace.upload", project_id=self.project.id)
        except BuildError:
            return None

    def url(self, **params: Any) -> str:
        """This page with other parameters: the tab and version kept unless given."""
        values = {"tab": self.tab, "v": self.shown.id if self.shown and not self.is_latest else None}
        values.update(params)
        clean = {k: v for k, v in values.items() if v not in (None, "")}
        return url_for("chat.project", project_id=self.project.id, **clean)


def requested_tab() -> str:
    tab = request.args.get("tab", "preview")
    return tab if tab in TABS else "preview"


def build_pane(project: Project) -> Pane:
    snapshots = snapshot_service.list_snapshots(db.session, project.id, limit=VERSIONS_LISTED)
    wanted = int_arg("v")
    shown: Snapshot | None = snapshots[0] if snapshots else None
    if wanted is not None:  # someone else's id, or another project's, is a 404 like everywhere
        shown = access.owned_snapshot(db.session, user_id=current_user.id, snapshot_id=wanted, project_id=project.id)
    pane = Pane(project=project, tab=requested_tab(), snapshots=snapshots, shown=shown,
                is_latest=bool(snapshots) and shown is not None and snapshots[0].id == shown.id)
    if shown is None:
        return pane
    entries = snapshot_service.list_snapshot_files(db.session, shown.id)
    plan = site.site_plan([e.path for e in entries], changed_paths(shown))
    pane.site_kind, pane.site_message, pane.entry_page = plan.site_kind, plan.message, plan.entry
    if pane.tab == "preview" and plan.entry is None:
        pane.tab = "files"  # a version a browser cannot run opens on its files, and says why
    if pane.tab == "preview":
        from app.web.snapshot_preview import preview_url

        pane.extra["preview_src"] = preview_url(shown, current_user.id, plan.entry)
    elif pane.tab == "files":
        _files_tab(pane, shown, entries)
    elif pane.tab == "changes":
        _changes_tab(pane, shown)
    elif pane.tab == "publish":
        from app.web.publish import panel_view

        pane.extra["panel"] = panel_view(project)
    return pane


def _files_tab(pane: Pane, shown: Snapshot, entries: list[FileEntry]) -> None:
    from app.web.projects import build_file_tree, file_view

    wanted = request.args.get("path")
    selected = next((e for e in entries if e.path == wanted), None) if wanted else opening_file(entries, shown)
    source = request.args.get("view") == "source"
    pane.extra.update(entries=entries, tree=build_file_tree(entries),
                      view=file_view(shown, selected, rendered=False, source=source) if selected else None)


def _changes_tab(pane: Pane, shown: Snapshot) -> None:
    base_id = int_arg("base")
    try:
        result = snapshot_service.diff_snapshots(db.session, user_id=current_user.id, snapshot_id=shown.id,
                                                 against_id=base_id)
    except DomainError as error:
        pane.extra["diff_error"] = error.message
        return
    pane.extra.update(result=result, view="split" if request.args.get("view") == "split" else "inline")
