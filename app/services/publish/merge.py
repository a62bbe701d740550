"""Three-way merge of one file for a pull: base = the sync base's content, ours = the latest version's,
theirs = GitHub's head. Line-level merging is Breezy's `merge3` (pure Python); libgit2's `merge_file`
(through pygit2) gave byte-identical results on the cases of `tests/unit/test_pull_merge.py`, and merge3
needs no native library.

A real conflict writes git's markers into the file (`<<<<<<< Sorya`, `=======`, `>>>>>>> GitHub`), so
the person resolves it as they would after `git merge`; a file still holding a marker pair counts as
unresolved.
"""

from __future__ import annotations

from dataclasses import dataclass

import merge3

from app.services.snapshots import looks_binary

OURS_LABEL = "Sorya"
THEIRS_LABEL = "GitHub"
START_MARKER = "<<<<<<<"
MID_MARKER = "======="
END_MARKER = ">>>>>>>"


@dataclass(frozen=True)
class MergedFile:
    content: bytes
    conflicted: bool


def merge_text(base: bytes | None, ours: bytes, theirs: bytes) -> MergedFile:
    """The line-level merge of two texts that both changed `base` (None: both added the path)."""
    if ours == theirs:
        return MergedFile(ours, False)
    if any(looks_binary(data) for data in (base or b"", ours, theirs)):
        return MergedFile(ours, True)  # no markers in a binary file: keep ours, list the conflict
    try:
        texts = [(data or b"").decode("utf-8").splitlines(keepends=True) for data in (base, ours, theirs)]
    except UnicodeDecodeError:
        return MergedFile(ours, True)
    merger = merge3.Merge3(texts[0], texts[1], texts[2])
    lines = list(merger.merge_lines(name_a=OURS_LABEL, name_b=THEIRS_LABEL, start_marker=START_MARKER,
                                    mid_marker=MID_MARKER, end_marker=END_MARKER))
    conflicted = any(line.startswith(START_MARKER + " " + OURS_LABEL) for line in lines)
    return MergedFile("".join(lines).encode("utf-8"), conflicted)


def has_conflict_markers(content: bytes) -> bool:
    """Whether a file still holds a conflict a pull wrote (a start marker line and an end marker line)."""
    lines = content.split(b"\n")
    start = (START_MARKER + " " + OURS_LABEL).encode()
    end = (END_MARKER + " " + THEIRS_LABEL).encode()
    return any(line.startswith(start) for line in lines) and any(line.startswith(end) for line in lines)
