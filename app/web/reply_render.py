"""A reply rendered while it streams: finished blocks once, the open tail again on each delta.

A reply arrives as text deltas. Re-rendering the whole reply on each delta would cost more per delta as the
reply grows; `StreamRenderer` instead splits the text at block boundaries (a blank line outside a code
fence, or a fence's closing line): each finished block is rendered once, through the same sanitising
renderer as a finished reply (`app.web.reply_markdown.render_reply_html`), and only the open tail (at most
one block) is rendered again. Two kinds of open fence are not re-rendered as Markdown:

- a file block becomes a file card (path, language, live line count) sent whole once; after that each
  delta only carries the card's new code as plain text (`RenderStep.code`, added by the page as a text
  node) and its new line count, so a long file costs the same per delta as a short one;
- an edit block is shown as its diff (`render_edit_block_html`), re-rendered whole while it is open: edit
  blocks are small, and a diff cannot be grown line by line (a removed line may turn into context).

A closed fence is rendered like any finished block (highlighted, or the edit's final diff). Pure: no Flask,
no I/O."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from app.services.snapshots.reply_files import parse_edit_sections
from app.web.reply_markdown import is_edit_block, parse_fence_info, render_edit_block_html, render_reply_html

FENCE = "```"


@dataclass(frozen=True)
class RenderStep:
    """What one delta changes: `append` (finished blocks' HTML, to add once) and `tail` (the open block's
    HTML, replacing the previous tail). `tail` is None while an open file card grows: the page keeps the
    card and adds `code` (text, not HTML) to its code and shows `lines` as its line count."""

    append: str
    tail: str | None
    code: str = ""
    lines: str = ""

    def to_json(self) -> str:
        """The `html` event's data (static/js/chat.js reads it)."""
        data: dict[str, str | None] = {"append": self.append, "tail": self.tail}
        if self.tail is None:
            data.update(code=self.code, lines=self.lines)
        return json.dumps(data, separators=(",", ":"))


def _is_fence(line: str) -> bool:
    return line.lstrip(" ").startswith(FENCE)


def _may_become_fence(line: str) -> bool:
    """An unfinished last line that could still turn out to be the closing fence: held back from the card."""
    stripped = line.lstrip(" ")
    return bool(stripped) and len(stripped) <= len(FENCE) and set(stripped) == {"`"}


def _lines_label(language: str, path: str | None, lines: int) -> str:
    meta = f"{language} · " if path and language else ""
    return f"{meta}{lines} line{'' if lines == 1 else 's'} · writing…"


class StreamRenderer:
    def __init__(self, id_prefix: str) -> None:
        self.id_prefix = id_prefix
        self.blocks = 0          # finished blocks rendered so far
        self.tail = ""           # text of the open block
        self.in_fence = False    # the open block is inside a code fence
        self.scanned = 0         # the tail's whole lines up to here were looked at already
        self.renders = 0         # Markdown or diff renders done (finished blocks + tails): for tests and benches
        self._card: _OpenCard | None = None  # the open fence's card, once the page has it

    def feed(self, delta: str) -> RenderStep:
        self.tail += delta
        finished = self._cut_finished()
        append = "".join(self._render_block(block) for block in finished)
        if self.in_fence:
            return self._fence_step(append)
        return RenderStep(append=append, tail=self._render_prose_tail())

    def _cut_finished(self) -> list[str]:
        """Move every finished block out of the tail (only whole lines are looked at)."""
        finished: list[str] = []
        start = 0             # where the current block starts in self.tail
        pos = self.scanned    # where the next line not yet looked at starts
        while True:
            end = self.tail.find("\n", pos)
            if end < 0:
                break
            line = self.tail[pos:end]
            pos = end + 1
            if _is_fence(line):
                if self.in_fence:  # a closing fence ends the block with it
                    self.in_fence = False
                    self._card = None
                    finished.append(self.tail[start:pos])
                    start = pos
                else:  # an opening fence: the block before it (if any) is finished, the fence starts the tail
                    finished.append(self.tail[start:end - len(line)])
                    start = end - len(line)
                    self.in_fence = True
            elif not self.in_fence and not line.strip() and self.tail[start:pos].strip():
                finished.append(self.tail[start:pos])
                start = pos
        self.tail = self.tail[start:]
        self.scanned = pos - start
        if self._card is not None:
            self._card.sent -= start
        return [block for block in finished if block.strip()]

    def _render_block(self, text: str) -> str:
        self.blocks += 1
        self.renders += 1
        return str(render_reply_html(text, id_prefix=f"{self.id_prefix}-b{self.blocks}"))

    def _render_prose_tail(self) -> str:
        if not self.tail.strip():
            return ""
        self.renders += 1
        return str(render_reply_html(self.tail, id_prefix=f"{self.id_prefix}-tail"))

    def _fence_step(self, append: str) -> RenderStep:
        card = self._card
        if card is None:
            card = self._card = _OpenCard.opening(self.tail)
            if not card.is_edit:
                code = card.take(self.tail)
                return RenderStep(append=append, tail=open_file_card(card, code))
        if card.is_edit:
            self.renders += 1
            # Whole lines only: a half-written marker line is not yet a removed or added line.
            body = self.tail[card.code_start:self.tail.rfind("\n") + 1].split("\n")[:-1]
            return RenderStep(append=append, tail=str(render_edit_block_html(
                card.path or "", parse_edit_sections(body), writing=True)))
        code = card.take(self.tail)
        return RenderStep(append=append, tail=None, code=code, lines=card.label())


@dataclass
class _OpenCard:
    """The open fence the page shows as a card: where its code starts in the tail, how much of the tail the
    page has (`sent`), and its line count so far."""

    language: str
    path: str | None
    is_edit: bool
    code_start: int
    sent: int
    newlines: int = 0
    ends_mid_line: bool = False

    @classmethod
    def opening(cls, tail: str) -> _OpenCard:
        first_end = tail.find("\n")
        first = tail[:first_end].lstrip(" ")
        info = first[len(FENCE):]
        language, path = parse_fence_info(info)
        return cls(language=language, path=path, is_edit=bool(path) and is_edit_block(info),
                   code_start=first_end + 1, sent=first_end + 1)

    def take(self, tail: str) -> str:
        """The code the page does not have yet (a last line that may be the closing fence held back)."""
        new = tail[self.sent:]
        last_line = new[new.rfind("\n") + 1:]
        if _may_become_fence(last_line):
            new = new[:len(new) - len(last_line)]
        self.sent += len(new)
        self.newlines += new.count("\n")
        if new:
            self.ends_mid_line = not new.endswith("\n")
        return new

    def label(self) -> str:
        return _lines_label(self.language, self.path, self.newlines + (1 if self.ends_mid_line else 0))


def open_file_card(card: _OpenCard, code: str) -> str:
    """A code fence still being written: its path, language and lines so far, escaped, folded open. The page
    adds later code to `[data-live-code]` and the count to `[data-live-lines]`."""
    label = html.escape(card.path or card.language or "code")
    return (
        f'<details class="code-file code-file--open" open><summary class="code-summary">'
        f'<span class="{"code-path" if card.path else "code-language"}">{label}</span>'
        f'<span class="code-lines" data-live-lines>{html.escape(card.label())}</span></summary>'
        f'<pre class="highlight" tabindex="0" aria-label="{label}"><code data-live-code>{html.escape(code)}</code>'
        f'</pre></details>'
    )
