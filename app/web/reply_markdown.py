"""Model replies as safe HTML: Markdown rendered on the server, code highlighted, then sanitised.

Three layers, so model text can never run in the page:
1. markdown-it with raw HTML off: `<script>`, `<img onerror=...>` in a reply become text;
2. its link check refuses `javascript:`/`data:` URLs;
3. nh3 (an allow-list sanitiser) keeps only the tags and attributes listed here.

Each fenced block whose info string carries `path=...` (the contract's file form) is shown as a file:
its path, and a *Copy* button wired by `static/js/app.js` (`data-copy-target`). An *edit* block (`edit`
among its info words) is shown as a small diff instead of its raw markers: `render_edit_block_html`,
which the streaming renderer calls too.
"""

from __future__ import annotations

import difflib
import functools
import html
import itertools
import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

from app.services.snapshots.reply_files import EDIT_WORDS, EditSection, parse_edit_sections

# Larger blocks are shown plain: highlighting them would cost more than it helps.
MAX_HIGHLIGHT_CHARS = 200_000
_PATH_RE = re.compile(r"""(?:^|\s)path=(?:"([^"]+)"|'([^']+)'|(\S+))""")

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "figure",
    "figcaption", "span", "button", "div",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class"},
    "a": {"href", "title"},
    "pre": {"id", "tabindex", "aria-label"},
    "span": {"aria-hidden"},
    "ol": {"start"},
    "button": {"type", "data-copy-target", "hidden"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}

_formatter = HtmlFormatter(nowrap=True)


def parse_fence_info(info: str) -> tuple[str, str | None]:
    """(language, path) from a fence's info string such as `python path=app/main.py`."""
    info = info.strip()
    match = _PATH_RE.search(info)
    path = next((group for group in match.groups() if group), None) if match else None
    first = info.split(None, 1)[0] if info else ""
    language = "" if first.startswith("path=") else first
    return language, path


def _lexer_for(language: str, path: str | None) -> Any:
    for finder in (lambda: get_lexer_by_name(language), lambda: get_lexer_for_filename(path or "")):
        try:
            return finder()
        except ClassNotFound:
            continue
    return TextLexer()


def highlight_code(code: str, language: str, path: str | None) -> str:
    if len(code) > MAX_HIGHLIGHT_CHARS:
        return html.escape(code)
    return highlight(code, _lexer_for(language, path), _formatter)


def _diff_rows(section: EditSection) -> list[tuple[str, str]]:
    """(kind, line) rows of one section: "same" context, "del" removed, "add" added."""
    rows: list[tuple[str, str]] = []
    search, replace = list(section.search), list(section.replace)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, search, replace, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [("same", line) for line in search[i1:i2]]
            continue
        rows += [("del", line) for line in search[i1:i2]]
        rows += [("add", line) for line in replace[j1:j2]]
    return rows


_DIFF_SIGNS = {"same": " ", "del": "-", "add": "+"}
_DIFF_LABELS = {"same": "", "del": "removed: ", "add": "added: "}


def render_edit_block_html(path: str, sections: Sequence[EditSection], *, writing: bool = False) -> Markup:
    """An edit block as a small diff: per section, its removed lines and added lines (with the lines both
    share as context), each section marked; a section the reply never finished says so. Escaped.

    `writing`: the block is still streaming, so its last section is unfinished by nature, not cut off."""
    state = " · writing…" if writing else ""
    parts = [
        f'<figure class="code-file code-edit{" code-file--open" if writing else ""}"><figcaption>'
        f'<span class="code-path">{html.escape(path)}</span>'
        f'<span class="code-language">edit · {len(sections)} change{"s" if len(sections) != 1 else ""}{state}</span>'
        "</figcaption>"
    ]
    for number, section in enumerate(sections, start=1):
        rows = "".join(
            f'<span class="diff-{kind}"><span class="visually-hidden">{_DIFF_LABELS[kind]}</span>'
            f'<span aria-hidden="true">{_DIFF_SIGNS[kind]}</span> {html.escape(line)}</span>'
            for kind, line in _diff_rows(section)
        )
        note = "" if section.complete or writing else '<span class="diff-cut">cut off: this change is incomplete</span>'
        parts.append(f'<pre class="edit-diff" aria-label="Change {number}"><code>{rows}{note}</code></pre>')
    if not sections:
        parts.append('<p class="edit-empty">{}</p>'.format("Writing the change…" if writing else "No changes in this block."))
    parts.append("</figure>\n")
    return Markup("".join(parts))  # noqa: S704 - every piece of text is escaped above


def is_edit_block(info: str) -> bool:
    """Whether a fence's info string makes it an edit block (`edit` among its words, or `action=edit`)."""
    words = re.sub(r"""\S+=(?:"[^"]*"|'[^']*'|\S+)""", " ", info).split()
    return any(word.lower() in EDIT_WORDS for word in words) or bool(re.search(r"(?:^|\s)action=edit\b", info))


def _render_fence(renderer: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
    token = tokens[idx]
    language, path = parse_fence_info(token.info)
    if path and is_edit_block(token.info):
        return str(render_edit_block_html(path, parse_edit_sections(token.content.split("\n"))))
    block_id = f"{env.get('id_prefix', 'code')}-{next(env.setdefault('counter', itertools.count(1)))}"
    code_html = highlight_code(token.content, language, path)
    label = html.escape(path) if path else html.escape(language or "code")
    label_class = "code-path" if path else "code-language"
    lines = token.content.count("\n") + (0 if token.content.endswith("\n") or not token.content else 1)
    meta = f'<span class="code-lines">{html.escape(language) + " · " if path and language else ""}' \
        f'{lines} line{"" if lines == 1 else "s"}</span>'
    # Copy is hidden until static/js/app.js shows it (it does nothing without JavaScript); the block
    # scrolls sideways, so it takes focus for keyboard scrolling.
    return (
        f'<figure class="code-file"><figcaption><span class="{label_class}">{label}</span>{meta}'
        f'<button type="button" class="code-copy" data-copy-target="{block_id}" hidden>Copy</button></figcaption>'
        f'<pre class="highlight" id="{block_id}" tabindex="0" aria-label="{label}"><code>{code_html}</code></pre>'
        f'</figure>\n'
    )


_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_markdown.add_render_rule("fence", _render_fence)


# Rendering (markdown, highlighting, sanitising) costs milliseconds per reply with code, and a chat page
# shows dozens of replies that never change once ended: the most recent renders are kept, per process.
RENDER_CACHE_SIZE = 512


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def render_reply_html(text: str, *, id_prefix: str) -> Markup:
    """The reply as sanitised HTML; `id_prefix` keeps element ids unique on a page of many replies.

    A pure function of its arguments, so its results are cached (`RENDER_CACHE_SIZE` most recent).
    """
    raw = _markdown.render(text or "", {"id_prefix": id_prefix})
    clean = nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


def pygments_css() -> str:
    """The highlighter's stylesheet (static/css/pygments.css is generated from it)."""
    return HtmlFormatter(style="friendly").get_style_defs(".highlight")
