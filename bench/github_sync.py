"""GitHub both ways: importing a repository, pulling what changed, and noticing new commits.

Runs the GitHub emulator in its own process with 30 ms of latency per request and the real services on an
embedded SQLite database. Measured in the same run:

1. import of a 1,000-file repository: Sorya (repository, head, tree, tarball + its redirect: five
   requests, streamed) beside a blob-per-file fetch (the same tree read, then one blob request per
   file, 8 at a time). Targets: <= 5 requests, wall-time ratio <= 0.1;
2. pull of 5 files changed on GitHub into a 300-file project (target <= 6 requests);
3. the "new commits?" check on 100 page views of an unchanged project, spread over 10 minutes:
   requests that count against GitHub's rate limit (304s are free), beside asking on every view
   (target <= 2).

    .venv/bin/python bench/github_sync.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report, parse_args  # noqa: E402
from bench.github_push import LOGIN, SoryaSide, snapshot_files, start_emulator  # noqa: E402
from sandbox.emulators.control import EmulatorControl  # noqa: E402

CHANGED = 5
PAGE_VIEWS = 100
VIEW_EVERY_S = 6  # 100 views over 10 minutes


def make_repo(control: EmulatorControl, token: str, github_url: str, name: str, files: dict[str, bytes]) -> None:
    requests.post(f"{github_url}/api/v3/user/repos", json={"name": name, "private": True},
                  headers={"Authorization": f"token {token}"}, timeout=30).raise_for_status()
    control.push_as_someone_else(LOGIN, name, {p: d.decode() for p, d in files.items()}, message="seed")


def api_calls(control: EmulatorControl, mark: int) -> list[dict]:
    return control.calls(since=mark)


class Sync(SoryaSide):
    def settings(self):
        from app import runtime
        from app.services import publish

        return publish.PublishSettings.from_config(runtime.settings(), runtime.keyring())

    def limits(self):
        from app.services.snapshots import SnapshotLimits

        return SnapshotLimits(max_files=5000, max_file_bytes=1_000_000, max_total_bytes=200_000_000)

    def import_repo(self, name: str):
        from app.extensions import db
        from app.services.publish.importing import import_repository

        with self.app.app_context():
            return import_repository(db.session, user_id=self.user_id, repo=f"{LOGIN}/{name}",
                                     settings=self.settings(), limits=self.limits()).project.id

    def blob_per_file(self, name: str) -> int:
        from app.extensions import db
        from app.providers.github import GithubRepoClient
        from app.providers.github.archive import list_tree, read_blobs
        from app.services.publish import client_for

        with self.app.app_context():
            client = client_for(db.session, self.user_id, self.settings())
            head = client.get_branch_head(f"{LOGIN}/{name}", "main")
            entries = list_tree(client, f"{LOGIN}/{name}", head or "")
            settings = self.settings()

            def make_client() -> GithubRepoClient:
                return GithubRepoClient(github_url=settings.github_url, token=self.token)

            files = dict(read_blobs(make_client, f"{LOGIN}/{name}", entries))
            return len(files)

    def archive_fetch(self, name: str) -> int:
        """The same fetch as `blob_per_file`, through the tarball (what an import does before storing)."""
        from app.extensions import db
        from app.providers.github.archive import list_tree, stream_archive
        from app.services.publish import client_for

        with self.app.app_context():
            client = client_for(db.session, self.user_id, self.settings())
            client.get_repository(f"{LOGIN}/{name}")
            head = client.get_branch_head(f"{LOGIN}/{name}", "main") or ""
            wanted = {e.path for e in list_tree(client, f"{LOGIN}/{name}", head)}
            return len(dict(stream_archive(client, f"{LOGIN}/{name}", head, wanted)))

    def pull(self, project_id: int):
        from app.extensions import db
        from app.services.publish.pull import pull

        with self.app.app_context():
            return pull(db.session, project_id=project_id, user_id=self.user_id, settings=self.settings(),
                        limits=self.limits())

    def page_views(self, project_id: int, views: int) -> None:
        from app.extensions import db
        from app.models import Project
        from app.models.base import utcnow
        from app.services.publish.pull import remote_status

        with self.app.app_context():
            start = utcnow()
            for view in range(views):
                project = db.session.get(Project, project_id)
                status = remote_status(db.session, project=project, user_id=self.user_id, settings=self.settings(),
                                       now=start + timedelta(seconds=view * VIEW_EVERY_S))
                assert status is not None and status.new_commits == 0


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import_files = 1000 if not args.quick else 600
    report = Report("github_sync")
    with tempfile.TemporaryDirectory(prefix="sorya-bench-sync-") as tmp:
        workdir = Path(tmp)
        process, github_url = start_emulator(workdir)
        try:
            control = EmulatorControl(github_url)
            token = control.issue_token(LOGIN, ["repo"])
            sorya = Sync(github_url, token, workdir)
            sorya.token = token

            make_repo(control, token, github_url, "big", snapshot_files(import_files))
            mark = control.mark()
            started = time.perf_counter()
            sorya.import_repo("big")
            import_s = time.perf_counter() - started
            import_requests = len(api_calls(control, mark))
            mark = control.mark()
            started = time.perf_counter()
            fetched = sorya.blob_per_file("big")
            blob_s = time.perf_counter() - started
            blob_requests = len(api_calls(control, mark))
            assert fetched == import_files
            started = time.perf_counter()
            assert sorya.archive_fetch("big") == import_files
            archive_s = time.perf_counter() - started
            report.compare("requests_import", import_requests, blob_requests, "requests")
            report.compare("seconds_fetch", archive_s, blob_s, "s", ratio_name="wall_time_ratio_fetch")
            report.compare("seconds_import", import_s, blob_s, "s", ratio_name="wall_time_ratio_import")

            files = snapshot_files(300)
            make_repo(control, token, github_url, "mid", files)
            project_id = sorya.import_repo("mid")
            changed = {p: (d + b"# changed on GitHub\n").decode() for p, d in sorted(files.items())[:CHANGED]}
            control.push_as_someone_else(LOGIN, "mid", changed)
            mark = control.mark()
            result = sorya.pull(project_id)
            pull_requests = len(api_calls(control, mark))
            assert result.files_changed == CHANGED and not result.conflicts
            report.compare("requests_pull_5_of_300", pull_requests, 6, "requests")

            mark = control.mark()
            sorya.page_views(project_id, PAGE_VIEWS)
            counted = [c for c in api_calls(control, mark) if c["status"] != 304]
            report.compare("rate_limited_requests_100_views", len(counted), PAGE_VIEWS, "requests")
        finally:
            process.terminate()
            process.wait(timeout=10)
    report.print()


if __name__ == "__main__":
    main()
