"""Applying a reply's edit blocks to the files as they stand: pure functions, no database, no Flask.

The blocks come from `reply_files.parse_reply_files` (its rule 9 says how they are written). A reply's
blocks apply **all together or not at all**: `apply_reply_blocks` either returns every file the reply
writes, or the list of everything that failed, and then nothing is written.

## Matching a SEARCH text

Files and SEARCH/REPLACE texts are compared line by line after turning CRLF into LF. A section's SEARCH
lines are looked for as consecutive whole lines of the file, in three steps; each step is tried only
when the previous one found nothing:

1. **exact**: the lines are equal;
2. **trailing whitespace**: the lines are equal once trailing spaces and tabs are removed from each;
3. **indentation shift**: the lines are equal once each non-blank SEARCH line is given (or loses) the
   same leading whitespace, e.g. the model wrote a method's body four spaces less indented than it
   stands. The REPLACE lines are then re-indented by the same shift. Blank lines match blank lines.

Exactly one match at a step: the matched lines are replaced by the REPLACE lines. Two or more at the
step that first finds any: the section fails as `ambiguous` (the model must quote more lines). None at
all: `not_found`. An edit of a path that the project's latest version (and the reply's earlier blocks)
does not have: `file_missing`. A section the reply never finished: `truncated`. An empty SEARCH text
matches nothing (new files are whole-file blocks).

Sections of one block apply in order, each to the result of the previous; blocks of one reply apply in
the reply's order, so an edit after a whole-file block of the same path edits that new content, and a
delete removes whatever the earlier blocks wrote. A file whose lines all ended in CRLF keeps CRLF.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.services.snapshots.reply_files import EditSection, ReplyFile

NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
FILE_MISSING = "file_missing"
TRUNCATED = "truncated"
REASON_WORDS = {
    NOT_FOUND: "not found",
    AMBIGUOUS: "found more than once",
    FILE_MISSING: "file missing",
    TRUNCATED: "cut off",
}


@dataclass(frozen=True)
class EditError:
    """Why one section failed: `block` is the 1-based index of the block in the reply, `section` within it."""

    path: str
    block: int
    section: int
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "block": self.block, "section": self.section, "reason": self.reason,
                "detail": self.detail}


@dataclass
class AppliedReply:
    """What a reply's blocks do to the files: new contents by path, paths deleted, or the errors."""

    writes: dict[str, str] = field(default_factory=dict)
    deletions: list[str] = field(default_factory=list)
    errors: list[EditError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class SectionFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _split(text: str) -> tuple[list[str], bool]:
    """The file's lines (LF-split, so a final LF leaves a last empty element) and whether it used CRLF."""
    crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
    return text.replace("\r\n", "\n").split("\n"), crlf


def _join(lines: list[str], crlf: bool) -> str:
    return ("\r\n" if crlf else "\n").join(lines)


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _windows(lines: list[str], size: int) -> range:
    return range(len(lines) - size + 1) if size <= len(lines) else range(0)


def _find(lines: list[str], search: Sequence[str], same: Callable[[str, str], bool]) -> list[int]:
    return [
        start for start in _windows(lines, len(search))
        if all(same(lines[start + k], search[k]) for k in range(len(search)))
    ]


def _shift_of(window: Sequence[str], search: Sequence[str]) -> tuple[str, str] | None:
    """(added, removed) leading whitespace that turns every non-blank SEARCH line into the window's line,
    or None when no single shift does."""
    shift: tuple[str, str] | None = None
    for have, want in zip(window, search, strict=True):
        have, want = have.rstrip(), want.rstrip()
        if not have or not want:
            if have or want:
                return None
            continue
        if have.lstrip(" \t") != want.lstrip(" \t"):
            return None
        lead_have, lead_want = _leading(have), _leading(want)
        if lead_have.endswith(lead_want):
            candidate = (lead_have[: len(lead_have) - len(lead_want)], "")
        elif lead_want.endswith(lead_have):
            candidate = ("", lead_want[: len(lead_want) - len(lead_have)])
        else:
            return None
        if shift is None:
            shift = candidate
        elif shift != candidate:
            return None
    return shift


def _reindent(lines: Sequence[str], shift: tuple[str, str]) -> list[str]:
    added, removed = shift
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
        elif removed and line.startswith(removed):
            out.append(added + line[len(removed):])
        elif removed:
            out.append(added + line.lstrip(" \t"))
        else:
            out.append(added + line)
    return out


def apply_section(text: str, section: EditSection) -> str:
    """`text` with the section's SEARCH lines replaced, by the steps in the module docstring.

    Raises `SectionFailed` (reason and a sentence) when the section cannot apply."""
    if not section.complete:
        raise SectionFailed(TRUNCATED, "The reply ended before this section's >>>>>>> REPLACE line.")
    if not section.search:
        raise SectionFailed(NOT_FOUND, "The SEARCH text is empty; new files are written as whole-file blocks.")
    lines, crlf = _split(text)
    search, replace = list(section.search), list(section.replace)
    steps: list[tuple[str, Callable[[str, str], bool]]] = [
        ("exactly", lambda a, b: a == b),
        ("ignoring trailing whitespace", lambda a, b: a.rstrip() == b.rstrip()),
    ]
    for label, same in steps:
        found = _find(lines, search, same)
        if len(found) > 1:
            raise SectionFailed(AMBIGUOUS, f"The SEARCH text occurs {len(found)} times ({label}); quote more lines.")
        if found:
            start = found[0]
            return _join(lines[:start] + replace + lines[start + len(search):], crlf)
    shifted = [
        (start, shift) for start in _windows(lines, len(search))
        if (shift := _shift_of(lines[start:start + len(search)], search)) is not None
    ]
    if len(shifted) > 1:
        raise SectionFailed(
            AMBIGUOUS, f"The SEARCH text occurs {len(shifted)} times at other indentations; quote more lines."
        )
    if not shifted:
        first = search[0].strip()[:60]
        raise SectionFailed(NOT_FOUND, f"The SEARCH text starting “{first}” is not in the file as it stands.")
    start, shift = shifted[0]
    return _join(lines[:start] + _reindent(replace, shift) + lines[start + len(search):], crlf)


def apply_sections(text: str, sections: Sequence[EditSection]) -> str:
    """Every section in order; the first failure raises `SectionFailed`."""
    for section in sections:
        text = apply_section(text, section)
    return text


def apply_reply_blocks(current: dict[str, str], blocks: Sequence[ReplyFile]) -> AppliedReply:
    """What `blocks` (a reply's, in order) do to `current` (path -> text of the files they touch, as the
    project's latest version holds them). Every failing section is reported; when any fails, `writes`
    and `deletions` are empty, so the caller writes nothing."""
    state: dict[str, str | None] = dict(current)
    touched: list[str] = []
    errors: list[EditError] = []
    for number, block in enumerate(blocks, start=1):
        if block.path not in touched:
            touched.append(block.path)
        if block.deleted:
            state[block.path] = None
        elif not block.edit:
            state[block.path] = block.content
        else:
            state[block.path] = _apply_block(state.get(block.path), block, number, errors)
    if errors:
        return AppliedReply(errors=errors)
    result = AppliedReply()
    for path in touched:
        text = state.get(path)
        if text is None:
            result.deletions.append(path)
        else:
            result.writes[path] = text
    return result


def _apply_block(text: str | None, block: ReplyFile, number: int, errors: list[EditError]) -> str | None:
    """The file after one edit block; each failing section is recorded and skipped (so later sections
    are still checked against the text they would have seen)."""
    if text is None:
        errors.append(EditError(block.path, number, 1, FILE_MISSING,
                                f"{block.path} is not in the project, so it cannot be edited; write it whole."))
        return None
    if not block.sections:
        errors.append(EditError(block.path, number, 1, NOT_FOUND,
                                "This edit block has no <<<<<<< SEARCH / ======= / >>>>>>> REPLACE section."))
        return text
    for index, section in enumerate(block.sections, start=1):
        try:
            text = apply_section(text, section)
        except SectionFailed as failure:
            errors.append(EditError(block.path, number, index, failure.reason, failure.detail))
    return text


def describe_errors(errors: Sequence[EditError | dict[str, Any]]) -> str:
    """One sentence per failure, for a person ("Block 2, section 1 (app.py): not found — ...")."""
    sentences = []
    for error in errors:
        item = error.as_dict() if isinstance(error, EditError) else error
        words = REASON_WORDS.get(item["reason"], item["reason"])
        sentences.append(f"Block {item['block']}, section {item['section']} ({item['path']}): {words}. {item['detail']}")
    return " ".join(sentences)
