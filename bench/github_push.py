"""Publishing speed: Sorya's Git Data API push beside the Contents-API-per-file baseline.

Runs the GitHub emulator in its own process (`python -m sandbox.emulators`) with 30 ms of latency per
request, and the real publish service on an embedded SQLite database. Measured in the same run:

1. the first push of a 300-file snapshot to an empty repository (Sorya: one Contents API call to make
   the first commit, then one blob per file, one tree, one commit, one ref update);
2. a second snapshot changing 5 of those files (Sorya: read the tree, 5 blobs, tree, commit, ref);

and, on a second repository, the baseline: one Contents API PUT per file of the snapshot (for the
second push, one recursive tree read to learn the files' shas, then a PUT per file, as a tool that does
not diff must do). Targets: <= 10 requests for the 5-file push, wall-time ratio <= 0.1.

    .venv/bin/python bench/github_push.py [--quick]
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report, parse_args  # noqa: E402

LATENCY_MS = 30
CHANGED_FILES = 5
LOGIN = "octocat"


def start_emulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    ready = workdir / "emulators.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulators", "--request-latency-ms", str(LATENCY_MS),
         "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the emulators did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["github"]


def snapshot_files(count: int, version: int = 1) -> dict[str, bytes]:
    files = {}
    for index in range(count):
        folder = f"src/module_{index // 25:02}"
        body = f"# file {index}\n" + "".join(f"VALUE_{n} = {index * 1000 + n}\n" for n in range(40))
        files[f"{folder}/file_{index:03}.py"] = body.encode()
    if version > 1:
        for path in sorted(files)[:CHANGED_FILES]:
            files[path] = files[path] + f"# changed in version {version}\n".encode()
    return files


class SoryaSide:
    """The real app and publish service on a throwaway SQLite database."""

    def __init__(self, github_url: str, token: str, workdir: Path) -> None:
        from config import Config

        self.config = Config.from_env(env={}, DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
                                      INSTANCE_DIR=str(workdir), GITHUB_URL=github_url, TESTING=True)
        from app import create_app

        self.app = create_app(self.config)
        with self.app.app_context():
            from flask_migrate import upgrade

            upgrade()
            self._seed(token)

    def _seed(self, token: str) -> None:
        from app import runtime
        from app.crypto import encrypt_secret
        from app.extensions import db
        from app.models import GithubAccount, Project, User
        from app.services.accounts import GITHUB_TOKEN_PURPOSE

        user = User(login=LOGIN, name="Octo Cat", email="octo@example.com")
        db.session.add(user)
        db.session.flush()
        db.session.add(GithubAccount(user_id=user.id, github_user_id=1, login=LOGIN, scopes="repo",
                                     access_token_encrypted=encrypt_secret(
                                         runtime.keyring(), token, purpose=GITHUB_TOKEN_PURPOSE, owner=user.id)))
        project = Project(user_id=user.id, name="Bench Project")
        db.session.add(project)
        db.session.commit()
        self.user_id, self.project_id = user.id, project.id

    def link(self) -> str:
        from app import runtime
        from app.extensions import db
        from app.services import publish

        with self.app.app_context():
            settings = publish.PublishSettings.from_config(runtime.settings(), runtime.keyring())
            return publish.create_repository(db.session, project_id=self.project_id, user_id=self.user_id,
                                             settings=settings, name="sorya-push").full_name

    def add_snapshot(self, files: dict[str, bytes]) -> int:
        from sqlalchemy import func, select

        from app.extensions import db
        from app.models import Blob, Snapshot
        from app.services.snapshots.trees import link_project_blobs, write_tree

        with self.app.app_context():
            number = (db.session.execute(select(func.max(Snapshot.number))).scalar() or 0) + 1
            snapshot = Snapshot(project_id=self.project_id, number=number, file_count=len(files),
                                summary=f"bench version {number}")
            db.session.add(snapshot)
            blob_ids: dict[str, int] = {}
            for path, data in files.items():
                digest = hashlib.sha256(data).hexdigest()
                blob = db.session.execute(select(Blob).where(Blob.sha256 == digest)).scalar_one_or_none()
                if blob is None:
                    git_sha = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()
                    blob = Blob(sha256=digest, git_sha=git_sha, size=len(data), content=data)
                    db.session.add(blob)
                    db.session.flush()
                blob_ids[path] = blob.id
            snapshot.root_tree = write_tree(db.session, self.project_id, blob_ids)
            link_project_blobs(db.session, self.project_id, blob_ids.values())
            db.session.commit()
            return snapshot.id

    def push(self, snapshot_id: int) -> tuple[int, float, int]:
        """(requests, seconds, files changed) of one push, timed from start to recorded result."""
        from app import runtime
        from app.extensions import db
        from app.services import publish

        with self.app.app_context():
            settings = publish.PublishSettings.from_config(runtime.settings(), runtime.keyring())
            started = time.perf_counter()
            push = publish.start_push(db.session, project_id=self.project_id, user_id=self.user_id,
                                      snapshot_id=snapshot_id)
            outcome = publish.run_push(db.session, push.id, settings)
            elapsed = time.perf_counter() - started
            if outcome.error is not None:
                raise SystemExit(f"Sorya's push failed: {outcome.error.message}")
            return outcome.push.requests_made, elapsed, outcome.push.files_changed


class ContentsBaseline:
    """One Contents API PUT per file, the way a tool without the Git Data API publishes."""

    def __init__(self, github_url: str, token: str) -> None:
        self.api = f"{github_url}/api/v3"
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"token {token}", "Accept": "application/vnd.github+json"})
        self.requests = 0

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        self.requests += 1
        response = self.http.request(method, f"{self.api}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def create(self, name: str) -> None:
        self.call("POST", "/user/repos", json={"name": name, "private": True})
        self.requests = 0

    def push(self, repo: str, files: dict[str, bytes], first: bool) -> tuple[int, float]:
        self.requests = 0
        started = time.perf_counter()
        shas: dict[str, str] = {}
        if not first:
            tree = self.call("GET", f"/repos/{LOGIN}/{repo}/git/trees/main", params={"recursive": "1"}).json()
            shas = {entry["path"]: entry["sha"] for entry in tree["tree"] if entry["type"] == "blob"}
        for path, data in sorted(files.items()):
            body = {"message": f"Update {path}", "content": base64.b64encode(data).decode(), "branch": "main"}
            if path in shas:
                body["sha"] = shas[path]
            self.call("PUT", f"/repos/{LOGIN}/{repo}/contents/{path}", json=body)
        return self.requests, time.perf_counter() - started


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    file_count = 60 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="sorya-bench-push-") as tmp:
        workdir = Path(tmp)
        process, github_url = start_emulator(workdir)
        try:
            token = requests.post(f"{github_url}/_emulator/tokens", json={"login": LOGIN, "scopes": ["repo"]},
                                  timeout=10).json()["token"]
            sorya = SoryaSide(github_url, token, workdir)
            repo = sorya.link()
            v1, v2 = snapshot_files(file_count), snapshot_files(file_count, version=2)
            first_requests, first_s, _ = sorya.push(sorya.add_snapshot(v1))
            inc_requests, inc_s, changed = sorya.push(sorya.add_snapshot(v2))
            remote = requests.get(f"{github_url}/_emulator/repos/{repo}/files", timeout=30).json()
            assert remote == {p: d.decode() for p, d in v2.items()}, "Sorya's push does not match the snapshot"
            assert changed == CHANGED_FILES

            baseline = ContentsBaseline(github_url, token)
            baseline.create("contents-baseline")
            base_first_requests, base_first_s = baseline.push("contents-baseline", v1, first=True)
            base_inc_requests, base_inc_s = baseline.push("contents-baseline", v2, first=False)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    print(f"GitHub emulator with {LATENCY_MS} ms per request; {file_count}-file snapshot, then "
          f"{CHANGED_FILES} files changed. Baseline: one Contents API PUT per file.\n")
    report = Report("github_push")
    report.compare("requests_first_push", first_requests, base_first_requests, "req",
                   ratio_name="requests_first_push_ratio")
    report.compare("wall_s_first_push", first_s, base_first_s, "s", ratio_name="wall_time_first_push_ratio")
    report.compare("requests_incremental_push", inc_requests, base_inc_requests, "req",
                   ratio_name="requests_incremental_push_ratio")
    report.compare("wall_s_incremental_push", inc_s, base_inc_s, "s", ratio_name="wall_time_ratio")
    targets_met = inc_requests <= 10 and report.ratios["wall_time_ratio"] <= 0.1
    report.figures["targets_met"] = 1.0 if targets_met else 0.0
    report.print()
    if os.environ.get("BENCH_STRICT") and not targets_met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
