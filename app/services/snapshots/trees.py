"""A version's files as a tree of directory manifests, shared between versions as git trees are.

A manifest is one directory: compact, key-sorted JSON of `name -> blob id` for its files and
`name + "/" -> subtree hash` for its folders (the slash keeps a file `a` and a folder `a/` apart, which
a flat file list allowed); a folder of a single entry is written into its parent (`build_trees`). Its SHA-256 is its address within the project (`snapshot_trees`, unique per
project and hash), so a version that changes 3 files writes only the manifests on those 3 paths (at most
3 × depth rows) and points its `snapshots.root_tree` at the new root; every other directory is the
previous version's row. `project_blobs` records which blobs some version of a project holds, since SQL
cannot join into a manifest: garbage collection and the storage quota read that table.

Manifests never change once written, so parsed ones are kept per process by hash (`_MANIFESTS`, bounded):
a repeat read of a version's file list asks the database for no tree at all. The hash names the bytes, so
the memo cannot go stale, whatever project or database the same bytes come from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.models import ProjectBlob, SnapshotTree
from app.runtime.lru import BoundedLRU
from app.services.snapshots.blobs import IN_CHUNK

# Parsed manifests kept per process, counted in entries (a folder of 2,000 files weighs 2,000): a
# 300-file project's 100 versions are ~10,000; the bound keeps the memo to some tens of MB.
MANIFEST_CACHE_ENTRIES = 200_000

Manifest = dict[str, "int | str"]


def serialize_manifest(entries: Manifest) -> bytes:
    """The canonical bytes of a manifest: the same entries always give the same bytes, so the same hash."""
    return json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_trees(files: dict[str, int]) -> tuple[str | None, dict[str, bytes]]:
    """(root hash, manifest bytes by hash) for a file list `path -> blob id`; (None, {}) for no files.

    Pure. Folders with no file under them do not exist (a deleted last file takes its folder with it).
    A folder holding a single entry is no manifest of its own: that entry stands in its parent under the
    longer name (`docs/README.md`, `src/pkg/`), and a root holding a single folder takes that folder's
    entries, as a radix tree does. So `deep/er/path/file.txt` costs no manifest per level, and a project
    whose files all live under one top folder (`src/`, an upload's own folder) rewrites one manifest fewer
    per version. Entry names may therefore contain "/"; a folder's still ends with one.
    """
    root: dict = {}
    for path, blob_id in files.items():
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder + "/", {})
        node[name] = blob_id
    if not root:
        return None, {}
    manifests: dict[str, bytes] = {}

    def store(entries: Manifest) -> str:
        data = serialize_manifest(entries)
        digest = hashlib.sha256(data).hexdigest()
        manifests[digest] = data
        return digest

    def entries_of(node: dict) -> Manifest:
        entries: Manifest = {}
        for key, value in node.items():
            if not isinstance(value, dict):
                entries[key] = value
                continue
            child = entries_of(value)
            if len(child) == 1:
                (name, ref), = child.items()
                entries[key + name] = ref
            else:
                entries[key] = store(child)
        return entries

    entries = entries_of(root)
    while len(entries) == 1 and isinstance(ref := next(iter(entries.values())), str):
        # Only the root names this folder (no folder holds an identical copy of itself): it is not kept.
        key = next(iter(entries))
        entries = {key + name: child for name, child in json.loads(manifests.pop(ref)).items()}
    return store(entries), manifests


def flatten(root_hash: str, manifest_for: Callable[[str], Manifest]) -> dict[str, int]:
    """`path -> blob id` of the tree under `root_hash`, reading each manifest through `manifest_for`."""
    files: dict[str, int] = {}
    pending = [("", root_hash)]
    while pending:
        prefix, digest = pending.pop()
        for key, ref in manifest_for(digest).items():
            if isinstance(ref, str):
                pending.append((prefix + key, ref))  # key ends in "/"
            else:
                files[prefix + key] = ref
    return files


_MANIFESTS = BoundedLRU(MANIFEST_CACHE_ENTRIES, weigh=len)


def _load_manifests(session: Session, project_id: int, digests: set[str]) -> None:
    """Read the manifests not in the memo yet, one query per `IN_CHUNK` hashes."""
    missing = sorted(d for d in digests if _MANIFESTS.get(d) is None)
    for start in range(0, len(missing), IN_CHUNK):
        chunk = missing[start : start + IN_CHUNK]
        rows = session.execute(
            select(SnapshotTree.hash, SnapshotTree.manifest).where(
                SnapshotTree.project_id == project_id, SnapshotTree.hash.in_(chunk)
            )
        )
        for digest, data in rows:
            _MANIFESTS.put(digest, json.loads(bytes(data)))


def read_tree(session: Session, project_id: int, root_hash: str | None) -> dict[str, int]:
    """`path -> blob id` of a version's tree: one query per folder depth for manifests not read before
    by this process, none for a version read before. A missing manifest is a broken version: `LookupError`."""
    if root_hash is None:
        return {}
    level = {root_hash}
    while level:  # breadth first, so each depth is one query
        _load_manifests(session, project_id, level)
        below: set[str] = set()
        for digest in level:
            manifest = _MANIFESTS.get(digest)
            if manifest is None:
                raise LookupError(f"tree {digest[:12]} of project {project_id} is missing")
            below.update(ref for ref in manifest.values() if isinstance(ref, str))
        level = {d for d in below if _MANIFESTS.get(d) is None}

    def manifest_for(digest: str) -> Manifest:
        manifest = _MANIFESTS.get(digest)
        if manifest is None:  # evicted between the load and here: read it alone
            _load_manifests(session, project_id, {digest})
            manifest = _MANIFESTS.get(digest)
        if manifest is None:
            raise LookupError(f"tree {digest[:12]} of project {project_id} is missing")
        return manifest

    return flatten(root_hash, manifest_for)


def write_tree(session: Session, project_id: int, files: dict[str, int]) -> str | None:
    """Store the manifests of this file list that the project does not hold yet; the root's hash. Does not
    commit. Callers hold the project's row lock, so two writers never race on the same new hash."""
    root, manifests = build_trees(files)
    if not manifests:
        return root
    existing: set[str] = set()
    digests = list(manifests)
    for start in range(0, len(digests), IN_CHUNK):
        chunk = digests[start : start + IN_CHUNK]
        existing.update(session.scalars(
            select(SnapshotTree.hash).where(SnapshotTree.project_id == project_id, SnapshotTree.hash.in_(chunk))
        ))
    new = [{"project_id": project_id, "hash": d, "manifest": data} for d, data in manifests.items() if d not in existing]
    if new:
        session.execute(insert(SnapshotTree), new)
    for digest, data in manifests.items():
        _MANIFESTS.put(digest, json.loads(data))
    return root


def link_project_blobs(session: Session, project_id: int, blob_ids: Iterable[int]) -> int:
    """Record that the project holds these blobs (those it did not yet); how many were new. Does not
    commit. Under the project's row lock, like `write_tree`."""
    wanted = sorted(set(blob_ids))
    held: set[int] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        held.update(session.scalars(
            select(ProjectBlob.blob_id).where(ProjectBlob.project_id == project_id, ProjectBlob.blob_id.in_(chunk))
        ))
    new = [{"project_id": project_id, "blob_id": blob_id} for blob_id in wanted if blob_id not in held]
    if new:
        session.execute(insert(ProjectBlob), new)
    return len(new)


def forget_cached_manifests() -> None:
    """Empty this process's memo (tests that count queries from a cold start)."""
    _MANIFESTS.clear()
