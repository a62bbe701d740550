"""Real git objects: the same bytes and sha1 ids ``git hash-object``, ``git mktree`` and ``git commit``
produce, so a tree pushed to the GitHub emulator can be compared with shas computed locally.

- blob: ``sha1(b"blob %d\\0" % len(data) + data)``
- tree: entries ``b"<mode> <name>\\0" + 20-byte sha``, sorted as git sorts them (a subtree sorts as if
  its name ended with ``/``); modes ``100644`` (file), ``100755`` (executable), ``120000`` (symlink),
  ``40000`` (tree), ``160000`` (submodule).
- commit: ``tree <sha>\\n`` + ``parent <sha>\\n``... + ``author <name> <<email>> <unix> <+hhmm>\\n`` +
  ``committer ...\\n`` + ``\\n`` + message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

FILE_MODE = "100644"
TREE_MODE = "040000"  # how the API shows it; git writes it as "40000" inside tree objects
VALID_BLOB_MODES = ("100644", "100755", "120000", "160000")


def object_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def blob_sha(data: bytes) -> str:
    return object_sha("blob", data)


@dataclass(frozen=True)
class TreeEntry:
    name: str
    mode: str  # as the API shows it: 100644, 100755, 120000, 160000, 040000
    kind: str  # blob | tree | commit
    sha: str


def encode_tree(entries: list[TreeEntry]) -> bytes:
    def sort_key(entry: TreeEntry) -> bytes:
        return entry.name.encode() + (b"/" if entry.kind == "tree" else b"")

    out = bytearray()
    for entry in sorted(entries, key=sort_key):
        mode = entry.mode.lstrip("0") or "0"
        out += f"{mode} {entry.name}\0".encode() + bytes.fromhex(entry.sha)
    return bytes(out)


def decode_tree(data: bytes) -> list[TreeEntry]:
    entries = []
    position = 0
    while position < len(data):
        space = data.index(b" ", position)
        nul = data.index(b"\0", space)
        mode = data[position:space].decode()
        name = data[space + 1:nul].decode()
        sha = data[nul + 1:nul + 21].hex()
        kind = "tree" if mode == "40000" else "commit" if mode == "160000" else "blob"
        entries.append(TreeEntry(name, mode.rjust(6, "0") if kind == "tree" else mode, kind, sha))
        position = nul + 21
    return entries


@dataclass(frozen=True)
class Signature:
    name: str
    email: str
    when: datetime  # timezone-aware

    def encode(self) -> str:
        offset = self.when.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        minutes = abs(minutes)
        return f"{self.name} <{self.email}> {int(self.when.timestamp())} {sign}{minutes // 60:02d}{minutes % 60:02d}"

    def as_json(self) -> dict[str, str]:
        when = self.when.astimezone(UTC) if self.when.utcoffset() == timedelta(0) else self.when
        iso = when.isoformat().replace("+00:00", "Z")
        return {"name": self.name, "email": self.email, "date": iso}

    @classmethod
    def parse(cls, line: str) -> Signature:
        head, _, tail = line.rpartition(">")
        name, _, email = head.partition(" <")
        stamp, zone = tail.split()
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
        return cls(name, email, datetime.fromtimestamp(int(stamp), tz))


@dataclass(frozen=True)
class CommitObject:
    tree: str
    parents: tuple[str, ...]
    author: Signature
    committer: Signature
    message: str

    def encode(self) -> bytes:
        lines = [f"tree {self.tree}"] + [f"parent {p}" for p in self.parents]
        lines += [f"author {self.author.encode()}", f"committer {self.committer.encode()}"]
        return ("\n".join(lines) + "\n\n" + self.message).encode()

    @classmethod
    def decode(cls, data: bytes) -> CommitObject:
        header, _, message = data.decode().partition("\n\n")
        tree, parents, author, committer = "", [], None, None
        for line in header.split("\n"):
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key == "author":
                author = Signature.parse(value)
            elif key == "committer":
                committer = Signature.parse(value)
        assert author is not None and committer is not None
        return cls(tree, tuple(parents), author, committer, message)


class ObjectStore:
    """Content-addressed storage of one repository's objects: sha -> (kind, bytes)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, bytes]] = {}

    def put(self, kind: str, data: bytes) -> str:
        sha = object_sha(kind, data)
        self.objects.setdefault(sha, (kind, data))
        return sha

    def get(self, sha: str, kind: str | None = None) -> bytes | None:
        found = self.objects.get(sha)
        if found is None or (kind is not None and found[0] != kind):
            return None
        return found[1]

    def kind_of(self, sha: str) -> str | None:
        found = self.objects.get(sha)
        return found[0] if found else None

    def put_blob(self, data: bytes) -> str:
        return self.put("blob", data)

    def put_commit(self, commit: CommitObject) -> str:
        return self.put("commit", commit.encode())

    def commit(self, sha: str) -> CommitObject | None:
        data = self.get(sha, "commit")
        return CommitObject.decode(data) if data is not None else None

    def tree_entries(self, sha: str) -> list[TreeEntry] | None:
        data = self.get(sha, "tree")
        return decode_tree(data) if data is not None else None

    # --- flat views: {path: (mode, kind, sha)} of every non-tree entry -------------------------------
    def flatten(self, tree_sha: str, prefix: str = "") -> dict[str, tuple[str, str, str]]:
        flat: dict[str, tuple[str, str, str]] = {}
        for entry in self.tree_entries(tree_sha) or []:
            path = prefix + entry.name
            if entry.kind == "tree":
                flat.update(self.flatten(entry.sha, path + "/"))
            else:
                flat[path] = (entry.mode, entry.kind, entry.sha)
        return flat

    def build_tree(self, flat: dict[str, tuple[str, str, str]]) -> str:
        """Write the nested trees of a flat path map and return the root tree's sha."""
        children: dict[str, dict[str, tuple[str, str, str]]] = {}
        entries: list[TreeEntry] = []
        for path, (mode, kind, sha) in flat.items():
            head, sep, rest = path.partition("/")
            if sep:
                children.setdefault(head, {})[rest] = (mode, kind, sha)
            else:
                entries.append(TreeEntry(head, mode, kind, sha))
        for name, sub in children.items():
            entries.append(TreeEntry(name, TREE_MODE, "tree", self.build_tree(sub)))
        return self.put("tree", encode_tree(entries))

    def files_at(self, commit_sha: str) -> dict[str, bytes]:
        commit = self.commit(commit_sha)
        if commit is None:
            return {}
        return {path: self.get(sha) or b"" for path, (_, kind, sha) in self.flatten(commit.tree).items()
                if kind == "blob"}

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        seen: set[str] = set()
        pending = [descendant]
        while pending:
            sha = pending.pop()
            if sha == ancestor:
                return True
            if sha in seen:
                continue
            seen.add(sha)
            commit = self.commit(sha)
            if commit is not None:
                pending.extend(commit.parents)
        return False
