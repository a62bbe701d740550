"""Diffs between two snapshots of a project, as hunks a page shows inline or side by side."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Snapshot
from app.services import access
from app.services.snapshots.blobs import looks_binary, read_blob_contents
from app.services.snapshots.reading import FileEntry, list_snapshot_files
from app.services.snapshots.secrets import redact_secrets

DIFF_CONTEXT_LINES = 3
# difflib is quadratic on pathological input. Lines equal at both ends are matched by trimming (linear);
# what remains is compared only under two budgets, else the file is marked too large to diff and only
# its sizes are shown: at most this many lines a side...
DIFF_MAX_LINES = 20_000
# ...and at most this many line comparisons in difflib's first pass (for every old line, each equal line
# on the new side: lines that repeat, like blank lines or `}`, cost the product of their counts).
# About half a second of CPU at most.
DIFF_MAX_COMPARISONS = 1_000_000

Opcode = tuple[str, int, int, int, int]


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side view; an inline view reads `old_*` as "-" lines and `new_*` as "+"."""

    kind: str  # "context", "remove", "add" or "change"
    old_no: int | None
    old_text: str | None
    new_no: int | None
    new_text: str | None


@dataclass(frozen=True)
class DiffHunk:
    header: str
    rows: list[DiffRow]

    def inline(self) -> list[tuple[str, int | None, int | None, str]]:
        """(kind, old line number, new line number, text): a changed block's removals before its additions."""
        lines: list[tuple[str, int | None, int | None, str]] = []
        pending_adds: list[tuple[str, int | None, int | None, str]] = []
        for row in self.rows:
            if row.kind == "context":
                lines.extend(pending_adds)
                pending_adds = []
                lines.append(("context", row.old_no, row.new_no, row.old_text or ""))
                continue
            if row.old_text is not None:
                lines.append(("remove", row.old_no, None, row.old_text))
            if row.new_text is not None:
                pending_adds.append(("add", None, row.new_no, row.new_text))
        return lines + pending_adds


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "added", "removed" or "changed"
    old_size: int | None
    new_size: int | None
    is_binary: bool = False
    too_large: bool = False
    hunks: list[DiffHunk] = field(default_factory=list)
    redacted: bool = False

    @property
    def unified_diff(self) -> str:
        if self.is_binary:
            return f"Binary files a/{self.path} and b/{self.path} differ\n"
        if self.too_large:
            return f"Files a/{self.path} and b/{self.path} are too large to compare line by line\n"
        out = [f"--- a/{self.path}", f"+++ b/{self.path}"]
        for hunk in self.hunks:
            out.append(hunk.header)
            for kind, _, _, text in hunk.inline():
                out.append({"context": " ", "remove": "-", "add": "+"}[kind] + text)
        return "\n".join(out) + "\n"

    @property
    def additions(self) -> int:
        return sum(1 for h in self.hunks for kind, *_ in h.inline() if kind == "add")

    @property
    def deletions(self) -> int:
        return sum(1 for h in self.hunks for kind, *_ in h.inline() if kind == "remove")


@dataclass(frozen=True)
class SnapshotDiff:
    base: Snapshot | None
    target: Snapshot
    added: list[FileEntry]
    removed: list[FileEntry]
    changed: list[FileDiff]
    unchanged_count: int


def _range(start: int, stop: int) -> str:
    """difflib's unified range notation."""
    length = stop - start
    first = start + 1
    if length == 1:
        return str(first)
    if not length:
        first -= 1
    return f"{first},{length}"


class _GroupedOpcodes(difflib.SequenceMatcher):
    """difflib's grouping of opcodes into hunks, over opcodes computed by `bounded_opcodes`."""

    def __init__(self, opcodes: list[Opcode]) -> None:
        super().__init__(None, [], [])
        self.known_opcodes = opcodes

    def get_opcodes(self) -> list[Opcode]:
        return list(self.known_opcodes)


def estimated_comparisons(old: list[str], new: list[str]) -> int:
    """The line comparisons difflib's first longest-match pass makes: for each old line, every equal new
    line. Deeper passes work on parts of the same ranges."""
    counts = Counter(new)
    return sum(counts.get(line, 0) for line in old)


def bounded_opcodes(
    old: list[str], new: list[str], *, max_comparisons: int | None = DIFF_MAX_COMPARISONS
) -> list[Opcode] | None:
    """difflib opcodes turning `old` into `new`, or None when comparing them is past the budgets.

    The common first and last lines are matched by trimming; difflib sees only the middle, where the
    sides differ, so one change in a long file costs what the change costs.
    """
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    old_middle, new_middle = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    if max_comparisons is not None and (
        max(len(old_middle), len(new_middle)) > DIFF_MAX_LINES
        or estimated_comparisons(old_middle, new_middle) > max_comparisons
    ):
        return None
    opcodes: list[Opcode] = [("equal", 0, prefix, 0, prefix)] if prefix else []
    if old_middle or new_middle:
        matcher = difflib.SequenceMatcher(None, old_middle, new_middle, autojunk=False)
        opcodes.extend(
            (tag, i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        )
    if suffix:
        opcodes.append(("equal", len(old) - suffix, len(old), len(new) - suffix, len(new)))
    return opcodes


def diff_lines(old: list[str], new: list[str], context: int = DIFF_CONTEXT_LINES) -> list[DiffHunk]:
    """Hunks of a line diff, as rows a page can show inline or side by side. Unbounded: callers that
    face arbitrary files use `diff_file`, which keeps to the budgets."""
    opcodes = bounded_opcodes(old, new, max_comparisons=None)
    assert opcodes is not None  # no budget given
    return hunks_of(old, new, opcodes, context)


def hunks_of(old: list[str], new: list[str], opcodes: list[Opcode], context: int = DIFF_CONTEXT_LINES) -> list[DiffHunk]:
    """The opcodes grouped into hunks with `context` lines around each change, as display rows."""
    hunks = []
    for group in _GroupedOpcodes(opcodes).get_grouped_opcodes(context):
        header = f"@@ -{_range(group[0][1], group[-1][2])} +{_range(group[0][3], group[-1][4])} @@"
        rows: list[DiffRow] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(DiffRow("context", i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k]) for k in range(i2 - i1))
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                old_no = i1 + k + 1 if i1 + k < i2 else None
                new_no = j1 + k + 1 if j1 + k < j2 else None
                kind = "change" if old_no and new_no else ("remove" if old_no else "add")
                rows.append(
                    DiffRow(kind, old_no, old[i1 + k] if old_no else None, new_no, new[j1 + k] if new_no else None)
                )
        hunks.append(DiffHunk(header, rows))
    return hunks


def _text_lines(path: str, content: bytes) -> tuple[list[str], bool]:
    redaction = redact_secrets(path, content.decode("utf-8", errors="replace"))
    return redaction.text.splitlines(), redaction.count > 0


def diff_file(path: str, old: bytes, new: bytes) -> FileDiff:
    """The diff of one changed file, with secrets redacted on both sides first. Past the budgets
    (`DIFF_MAX_LINES`, `DIFF_MAX_COMPARISONS`) it is `too_large`, with both sizes and no hunks."""
    if looks_binary(old) or looks_binary(new):
        return FileDiff(path, "changed", len(old), len(new), is_binary=True)
    old_lines, old_redacted = _text_lines(path, old)
    new_lines, new_redacted = _text_lines(path, new)
    opcodes = bounded_opcodes(old_lines, new_lines)
    if opcodes is None:
        return FileDiff(path, "changed", len(old), len(new), too_large=True)
    hunks = hunks_of(old_lines, new_lines, opcodes)
    if not hunks:  # only the final newline differs
        hunks = [DiffHunk("@@ end of file @@", [DiffRow("context", None, "(the last line's newline changed)", None,
                                                         "(the last line's newline changed)")])]
    return FileDiff(path, "changed", len(old), len(new), hunks=hunks, redacted=old_redacted or new_redacted)


def previous_snapshot(session: Session, snapshot: Snapshot) -> Snapshot | None:
    return session.execute(
        select(Snapshot)
        .where(Snapshot.project_id == snapshot.project_id, Snapshot.number < snapshot.number)
        .order_by(Snapshot.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def diff_snapshots(session: Session, *, user_id: int, snapshot_id: int, against_id: int | None = None) -> SnapshotDiff:
    """What changed from `against_id` (default: the previous snapshot) to `snapshot_id`.

    Both must belong to the same project of the user (else `NotFound`). Without a previous snapshot,
    every file is added. Contents are read only for changed files, in chunked queries.
    """
    target = access.owned_snapshot(session, user_id=user_id, snapshot_id=snapshot_id)
    if against_id is None:
        base = previous_snapshot(session, target)
    else:
        base = access.owned_snapshot(
            session, user_id=user_id, snapshot_id=against_id, project_id=target.project_id
        )
    new_files = {e.path: e for e in list_snapshot_files(session, target.id)}
    old_files = {e.path: e for e in list_snapshot_files(session, base.id)} if base else {}
    added = [e for path, e in new_files.items() if path not in old_files]
    removed = [e for path, e in old_files.items() if path not in new_files]
    changed_paths = [p for p, e in new_files.items() if p in old_files and old_files[p].sha256 != e.sha256]
    contents = read_blob_contents(
        session, [old_files[p].blob_id for p in changed_paths] + [new_files[p].blob_id for p in changed_paths]
    )
    changed = [
        diff_file(p, contents[old_files[p].blob_id], contents[new_files[p].blob_id]) for p in changed_paths
    ]
    unchanged = len(new_files) - len(added) - len(changed)
    return SnapshotDiff(base=base, target=target, added=added, removed=removed, changed=changed,
                        unchanged_count=unchanged)

