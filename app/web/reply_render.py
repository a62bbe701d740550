"""A reply rendered while it streams: finished blocks once, the open tail again on each delta.

A reply arrives as text deltas. Re-rendering the whole reply on each delta would cost more per delta as the
reply grows; `StreamRenderer` instead splits the text at block boundaries (a blank line outside a code
fence, or a fence's closing line): each finished block is rendered once, through the same sanitising
renderer as a finished reply (`app.web.reply_markdown.render_reply_html`), and only the open tail (at most
one block) is rendered again. An open fence shows as a file card (path, language, live line count) with
its code escaped, unhighlighted until the fence closes. Pure: no Flask, no I/O."""

from __future__ import annotations

import html
from dataclasses import dataclass

from app.web.reply_markdown import parse_fence_info, render_reply_html

FENCE = "```"


@dataclass(frozen=True)
class RenderStep:
    """What one delta changes: `append` (finished blocks' HTML, to add once) and `tail` (the open block's
    HTML, replacing the previous tail)."""

    append: str
    tail: str


def _is_fence(line: str) -> bool:
    return line.lstrip(" ").startswith(FENCE)


class StreamRenderer:
    def __init__(self, id_prefix: str) -> None:
        self.id_prefix = id_prefix
        self.blocks = 0          # finished blocks rendered so far
        self.tail = ""           # text of the open block
        self.in_fence = False    # the open block is inside a code fence
        self.scanned = 0         # the tail's whole lines up to here were looked at already
        self.renders = 0         # markdown renders done (finished blocks + tails): for tests and benches

    def feed(self, delta: str) -> RenderStep:
        self.tail += delta
        finished = self._cut_finished()
        append = "".join(self._render_block(block) for block in finished)
        return RenderStep(append=append, tail=self._render_tail())

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
                    finished.append(self.tail[start:pos])
                    start = pos
                elif self.tail[start:end - len(line)].strip():  # an opening fence after prose: split there
                    finished.append(self.tail[start:end - len(line)])
                    start = end - len(line)
                    self.in_fence = True
                else:
                    self.in_fence = True
            elif not self.in_fence and not line.strip() and self.tail[start:pos].strip():
                finished.append(self.tail[start:pos])
                start = pos
        self.tail = self.tail[start:]
        self.scanned = pos - start
        return [block for block in finished if block.strip()]

    def _render_block(self, text: str) -> str:
        self.blocks += 1
        self.renders += 1
        return str(render_reply_html(text, id_prefix=f"{self.id_prefix}-b{self.blocks}"))

    def _render_tail(self) -> str:
        if not self.tail.strip():
            return ""
        if self.in_fence:
            return open_file_card(self.tail)
        self.renders += 1
        return str(render_reply_html(self.tail, id_prefix=f"{self.id_prefix}-tail"))


def open_file_card(text: str) -> str:
    """A code fence still being written: its path, language and lines so far, escaped, folded open."""
    first, _, code = text.lstrip(" ").partition("\n")
    language, path = parse_fence_info(first[len(FENCE):])
    lines = code.count("\n") + (1 if code and not code.endswith("\n") else 0)
    label = html.escape(path or language or "code")
    meta = f"{html.escape(language)} · " if path and language else ""
    return (
        f'<details class="code-file code-file--open" open><summary class="code-summary">'
        f'<span class="{"code-path" if path else "code-language"}">{label}</span>'
        f'<span class="code-lines">{meta}{lines} line{"" if lines == 1 else "s"} · writing…</span></summary>'
        f'<pre class="highlight" tabindex="0" aria-label="{label}"><code>{html.escape(code)}</code></pre></details>'
    )
