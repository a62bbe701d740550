"""What files a reply contains: a pure parser over a string, with no database and no Flask.

The chat page calls `parse_reply_files` for every reply it shows, so it stays fast: one pass over the
lines, and every regular expression linear in the line it reads.

## What counts as a file

The reply is read line by line after turning CRLF and lone CR into LF.

1. **A fence** is a line of three or more backticks or tildes, indented by spaces only (any amount, since
   models put files inside list items). What follows the fence on that line is its *info string*; a
   backtick fence whose info string holds a backtick is inline code, not a fence.
2. **A fenced block is a file** when it names a path, in one of two ways:
   - in the info string, as `path=...`, `file=...` or `filename=...` (the value may be quoted with `"`
     or `'`), anywhere among its words: ```` ```python path=app/main.py ````, ```` ```path=app/main.py ````,
     ```` ```js file="src/my app.js" ````;
   - or, when the info string names none, on the block's first line as a comment: `// path: x`,
     `# file: x`, `-- path: x`, `; path: x`, `/* path: x */`, `<!-- path: x -->` (keys `path`, `file`,
     `filename`, any case). That first line is metadata and is not part of the file.
   A block that names no path is an example snippet, not a file: it is skipped silently.
3. **The block ends** at a line made only of the same fence character, at least as long as the opening
   fence. Nested fences are tolerated, because models write READMEs that contain code blocks with the
   same ```` ``` ```` fence: inside a file, a fence line *with* an info string (```` ```bash ````) opens a
   nested block, and the next bare fence closes that nested block instead of the file. (So a bare
   ```` ``` ```` opening a nested block without a language is read as the end of the file: ambiguous,
   and rare, since models label nested blocks.)
4. **The content** is the lines between the fences, each stripped of the opening fence's indentation
   (spaces only), joined with LF, ending with one LF unless the block is empty (empty block: empty file).
5. **Deletion**: a block whose info string also holds the word `delete` or `deleted` (or
   `action=delete`) deletes that path from the project: ```` ```path=old.py delete ````; its body is
   ignored.
6. **The same path twice**: for whole-file and delete blocks the last one wins, and a warning says so.
   Edit blocks (rule 9) are all kept, in the order of the reply: each applies to the file as the reply's
   earlier blocks for that path left it.
7. **A missing closing fence** at the end of the reply: when the reply finished normally
   (`reply_finished=True`), the model merely forgot the fence, so the file is kept up to the end of the
   reply, with a warning. When the reply was stopped or failed, the file was cut off mid-way: it is left
   out (so a snapshot keeps the previous version of it), with a warning.
8. **Paths** are trimmed, unquoted, NFC-normalised, and a leading `./` is dropped. Then `check_path`
   refuses, with a reason: empty paths, invisible or control characters (Unicode Cc, Cf, Zl, Zp, lone
   surrogates; NUL included), backslashes, absolute paths,
   drive letters, `.` or `..` segments, empty segments (`a//b`), a trailing `/`, any `.git` segment
   (any case), a segment over 255 bytes or a path over 1,024 bytes (UTF-8). Refused paths are listed in
   `ParsedFiles.refused`; they never appear in `files`.
9. **Edit blocks**: a block whose info string holds the word `edit` (or `action=edit`) changes the file
   in place instead of replacing it: ```` ```python path=app.py edit ````. Its body is one or more
   *sections*, each three marker lines around two texts:

       <<<<<<< SEARCH
       lines as they stand in the file
       =======
       the lines that replace them
       >>>>>>> REPLACE

   A marker is a whole line (after the block's indentation is removed; trailing spaces ignored):
   exactly seven `<`, `=` or `>` and, for the first and last, one space and the word `SEARCH` or
   `REPLACE`. Anything else, such as `x = "======="` or `<<<<<<< HEAD`, is text. Inside SEARCH the first
   `=======` line divides the texts (so a SEARCH text cannot hold a line that is exactly `=======`);
   inside REPLACE only `>>>>>>> REPLACE` ends the section, so a REPLACE text may hold `=======` lines.
   Lines between sections are ignored (models put remarks there). A normal (whole-file) block is never
   read for markers: a Markdown file that shows a SEARCH/REPLACE example is just a file.
   A section the reply never finished (no `>>>>>>> REPLACE` before the closing fence, or no closing
   fence) is kept as `complete=False`; `app.services.snapshots.edits` refuses to apply it (`truncated`),
   and a reply that was stopped mid-block drops the block (rule 7), so half a section is never applied.
   How sections are matched and applied is documented in `app.services.snapshots.edits`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
PATH_KEYS = ("path", "file", "filename")
DELETE_WORDS = ("delete", "deleted")
EDIT_WORDS = ("edit",)
SEARCH_MARKER = "<<<<<<< SEARCH"
DIVIDER_MARKER = "======="
REPLACE_MARKER = ">>>>>>> REPLACE"

FENCE_RE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# `key=value` in an info string. A key starts at the first letter of a run of word characters and dashes
# (`1a-b=x` has the key `a-b`). Matching starts only at the beginning of such a run, and each run is read
# once (possessive `*+`): starting again at every character of a long word made this quadratic.
INFO_PAIR_RE = re.compile(
    r"""(?<![\w-])(?:(?![A-Za-z_])[\w-])*+(?P<key>[A-Za-z_][\w-]*+)="""
    r"""(?:"(?P<dq>[^"]*+)"|'(?P<sq>[^']*+)'|(?P<bare>\S++))"""
)
# The opening of a first-line path comment, up to the colon; the path is what follows, trimmed in
# `_first_line_path` (a pattern with `\s*` on both sides of a lazy path is cubic in a run of whitespace).
FIRST_LINE_KEY_RE = re.compile(r"^\s*+(?://|#|--|;|/\*|<!--)\s*+(?:path|filename|file)\s*+:", re.IGNORECASE)
COMMENT_CLOSERS = ("*/", "-->")
DRIVE_LETTER_RE = re.compile(r"^[A-Za-z]:")
# Characters a person cannot see in a file name, or that change how it reads: controls (Cc, NUL and
# DEL included), formats (Cf: right-to-left overrides that make `x\u202egnp.exe` read as `xexe.png`,
# zero-width spaces, BOMs), line and paragraph separators (Zl, Zp), and lone surrogates (Cs), which are
# not text at all and cannot be stored as UTF-8.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@dataclass(frozen=True)
class EditSection:
    """One SEARCH/REPLACE section of an edit block, as lines without their LF; `complete` is False when
    the reply ended before the section's `>>>>>>> REPLACE` line."""

    search: tuple[str, ...]
    replace: tuple[str, ...]
    complete: bool = True


@dataclass(frozen=True)
class ReplyFile:
    """One file block of a reply. `deleted` blocks carry no content; `truncated` lacked a closing fence;
    `edit` blocks carry `sections` instead of content."""

    path: str
    content: str
    language: str | None = None
    deleted: bool = False
    truncated: bool = False
    line: int = 0  # 1-based line of the opening fence in the reply
    edit: bool = False
    sections: tuple[EditSection, ...] = ()


@dataclass(frozen=True)
class RefusedPath:
    path: str
    reason: str

    def sentence(self) -> str:
        return f"{self.path!r} {self.reason}."


@dataclass(frozen=True)
class ParsedFiles:
    """The files a reply writes or deletes (last block per path wins), and what the person should know."""

    files: list[ReplyFile] = field(default_factory=list)
    refused: list[RefusedPath] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocks: list[ReplyFile] = field(default_factory=list)  # every kept block, edits included, in order

    @property
    def has_files(self) -> bool:
        return bool(self.files)

    @property
    def has_edits(self) -> bool:
        return any(block.edit for block in self.blocks)

    @property
    def written(self) -> list[ReplyFile]:
        """The whole files the reply writes (the last block per path), not its edits."""
        return [f for f in self.files if not f.deleted and not f.edit]

    @property
    def edited_paths(self) -> list[str]:
        return list(dict.fromkeys(block.path for block in self.blocks if block.edit))

    @property
    def deleted_paths(self) -> list[str]:
        return [f.path for f in self.files if f.deleted]


def clean_path(raw: str) -> str:
    """The path as written, minus quotes, surrounding spaces and a leading `./`; NFC-normalised."""
    path = raw.strip().strip("`\"'").strip()
    path = unicodedata.normalize("NFC", path)
    while path.startswith("./"):
        path = path[2:]
    return path


def check_path(path: str) -> str | None:
    """Why `path` cannot be stored in a snapshot, as the end of a sentence, or None when it is safe.

    A safe path is relative, uses `/`, and cannot escape or disturb the folder it is extracted into.
    """
    if not path:
        return "is empty"
    hidden = next((ch for ch in path if unicodedata.category(ch) in HIDDEN_CATEGORIES), None)
    if hidden is not None:
        return f"contains an invisible or control character (U+{ord(hidden):04X})"
    if "\\" in path:
        return "uses a backslash; separate folders with /"
    if path.startswith("/"):
        return "is absolute; paths must be relative to the project folder"
    if DRIVE_LETTER_RE.match(path):
        return "starts with a drive letter; paths must be relative to the project folder"
    if path.endswith("/"):
        return "names a folder, not a file"
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES:,} bytes"
    return next(filter(None, map(_check_segment, path.split("/"))), None)


def _check_segment(segment: str) -> str | None:
    """Why one folder or file name of a path cannot be stored, or None."""
    if segment == "":
        return "has an empty folder name (//)"
    if segment == "..":
        return "goes above the project folder (..)"
    if segment == ".":
        return "has a '.' folder name"
    if segment.lower() == ".git":
        return "is inside .git, which holds Git's own data"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"has a name longer than {MAX_SEGMENT_BYTES} bytes"
    return None


@dataclass
class _Opener:
    fence_char: str
    fence_len: int
    indent: int
    info: str
    line: int


def _read_info(info: str) -> tuple[str | None, str | None, bool, bool]:
    """(language, path, deleted, edit) from a fence's info string."""
    path = None
    deleted = edit = False
    for match in INFO_PAIR_RE.finditer(info):
        key = match.group("key").lower()
        value = match.group("dq") if match.group("dq") is not None else match.group("sq")
        if value is None:
            value = match.group("bare")
        if key in PATH_KEYS and path is None:
            path = value
        elif key == "action" and value.lower() in DELETE_WORDS:
            deleted = True
        elif key == "action" and value.lower() in EDIT_WORDS:
            edit = True
    # Only the pair itself is taken out of the words, not what precedes its key in the same run.
    words = INFO_PAIR_RE.sub(lambda m: m.group(0)[: m.start("key") - m.start()] + " ", info).split()
    if any(word.lower() in DELETE_WORDS for word in words):
        deleted = True
    if any(word.lower() in EDIT_WORDS for word in words):
        edit = True
    language = next((w for w in words if w.lower() not in DELETE_WORDS + EDIT_WORDS), None)
    return language, path, deleted, edit and not deleted


def _is_closing(line: str, opener: _Opener) -> bool:
    stripped = line.strip()
    return len(stripped) >= opener.fence_len and stripped == opener.fence_char * len(stripped)


def _fence_opener(line: str, number: int) -> _Opener | None:
    match = FENCE_RE.match(line)
    if match is None:
        return None
    fence, info = match.group("fence"), match.group("info")
    if fence[0] == "`" and "`" in info:
        return None  # ```inline``` code on one line, not a fence
    return _Opener(fence[0], len(fence), len(match.group("indent")), info.strip(), number)


def _dedent(line: str, indent: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent):]


def parse_reply_files(text: str, *, reply_finished: bool = True) -> ParsedFiles:
    """The files a reply writes or deletes, by the rules in this module's docstring. Never raises."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: dict[str, ReplyFile] = {}
    blocks: list[ReplyFile] = []
    seen_count: dict[str, int] = {}
    refused: list[RefusedPath] = []
    warnings: list[str] = []
    index = 0
    while index < len(lines):
        opener = _fence_opener(lines[index], index + 1)
        index += 1
        if opener is None:
            continue
        body, index, closed = _read_block(lines, index, opener)
        block, raw_path = _block_to_file(opener, body, truncated=not closed)
        block = _keep_or_drop_truncated(block, reply_finished, warnings)
        if block is None:
            continue
        reason = check_path(block.path)
        if reason is not None:
            refused.append(RefusedPath(raw_path.strip() or block.path, reason))
            continue
        blocks.append(block)
        if not block.edit:
            seen_count[block.path] = seen_count.get(block.path, 0) + 1
        found.pop(block.path, None)  # re-insert so the order is that of the winning block
        found[block.path] = block

    for path, count in seen_count.items():
        if count > 1:
            warnings.append(f"{path} appears {count} times in this reply; the last one was kept.")
    for item in refused:
        warnings.append(f"Refused {item.sentence()}")
    return ParsedFiles(files=list(found.values()), refused=refused, warnings=warnings, blocks=blocks)


def _read_block(lines: list[str], index: int, opener: _Opener) -> tuple[list[str], int, bool]:
    """The block's body lines from `index` on (dedented), the index after it, and whether it was closed."""
    body: list[str] = []
    nested = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if _is_closing(line, opener):
            if nested == 0:
                return body, index, True
            nested -= 1
        else:
            inner = _fence_opener(line, index)
            # Only a fence that could also close this block needs counting: a shorter one cannot.
            if (
                inner is not None
                and inner.info
                and inner.fence_char == opener.fence_char
                and inner.fence_len >= opener.fence_len
            ):
                nested += 1
        body.append(_dedent(line, opener.indent))
    return body, index, False


def _keep_or_drop_truncated(block: ReplyFile | None, reply_finished: bool, warnings: list[str]) -> ReplyFile | None:
    """A block without a closing fence is kept when the reply finished (the model forgot the fence) and
    dropped when it was cut off; either way with a warning."""
    if block is None or not block.truncated:
        return block
    if reply_finished and not block.deleted:
        warnings.append(f"{block.path} has no closing fence; it was taken up to the end of the reply.")
        return block
    warnings.append(f"{block.path} was cut off when the reply stopped, so it was left out.")
    return None


def _first_line_path(line: str) -> str | None:
    """The path a first-line comment names (`// path: x`, `<!-- file: x -->`), or None. Linear in the line.

    The path is what follows the colon without surrounding whitespace and without a final comment closer;
    a closer that is all there is stays the path (and is refused later), as whitespace alone does.
    """
    match = FIRST_LINE_KEY_RE.match(line)
    if match is None:
        return None
    rest = line[match.end():]
    if not rest:
        return None
    path = rest.strip()
    if not path:
        return rest[-1]  # whitespace only: an empty path, refused by check_path
    for closer in COMMENT_CLOSERS:
        if path.endswith(closer) and path[: -len(closer)].rstrip():
            return path[: -len(closer)].rstrip()
    return path


def _block_to_file(opener: _Opener, body: list[str], *, truncated: bool) -> tuple[ReplyFile | None, str]:
    language, raw_path, deleted, edit = _read_info(opener.info)
    if raw_path is None and body:
        raw_path = _first_line_path(body[0])
        if raw_path is not None:
            body = body[1:]
    if raw_path is None:
        return None, ""
    content = "" if deleted or edit or not body else "\n".join(body) + "\n"
    return (
        ReplyFile(
            path=clean_path(raw_path),
            content=content,
            language=language,
            deleted=deleted,
            truncated=truncated,
            line=opener.line,
            edit=edit,
            sections=parse_edit_sections(body) if edit else (),
        ),
        raw_path,
    )


def _marker(line: str) -> str:
    return line.rstrip()


def parse_edit_sections(body: list[str]) -> tuple[EditSection, ...]:
    """The SEARCH/REPLACE sections of an edit block's body lines (rule 9). Never raises."""
    sections: list[EditSection] = []
    search: list[str] | None = None
    replace: list[str] | None = None
    for line in body:
        marker = _marker(line)
        if search is None:
            if marker == SEARCH_MARKER:
                search = []
        elif replace is None:
            if marker == DIVIDER_MARKER:
                replace = []
            else:
                search.append(line)
        elif marker == REPLACE_MARKER:
            sections.append(EditSection(tuple(search), tuple(replace)))
            search = replace = None
        else:
            replace.append(line)
    if search is not None:
        sections.append(EditSection(tuple(search), tuple(replace or ()), complete=False))
    return tuple(sections)


def elide_file_blocks(text: str, *, version: int | None = None) -> str:
    """`text` with every file block (one that names a path) replaced by one line saying what the reply
    did, e.g. `[wrote app.py, style.css; edited main.py → now in v7]`, where the first block stood.

    The prompt sends earlier replies this way: their files' current content is sent separately, so the
    history stops carrying every version of every file. Prose and example snippets stay as they are."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    done: dict[str, list[str]] = {"wrote": [], "edited": [], "deleted": []}
    summary_at: int | None = None
    index = 0
    while index < len(lines):
        start = index
        opener = _fence_opener(lines[index], index + 1)
        index += 1
        if opener is None:
            kept.append(lines[start])
            continue
        body, index, _closed = _read_block(lines, index, opener)
        block, _raw = _block_to_file(opener, body, truncated=False)
        if block is None:
            kept.extend(lines[start:index])
            continue
        verb = "deleted" if block.deleted else "edited" if block.edit else "wrote"
        if block.path not in done[verb]:
            done[verb].append(block.path)
        if summary_at is None:
            summary_at = len(kept)
    if summary_at is None:
        return text
    parts = [f"{verb} {', '.join(paths)}" for verb, paths in done.items() if paths]
    where = f" → now in v{version}" if version else ""
    kept.insert(summary_at, f"[{'; '.join(parts)}{where}]")
    return "\n".join(kept)
