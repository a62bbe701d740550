"""The streaming renderer renders each finished block once and only the open tail again."""

from __future__ import annotations

import html
import json
import re

from app.web.reply_markdown import render_reply_html
from app.web.reply_render import StreamRenderer

REPLY = (
    "Here is **the app**.\n\n"
    "```css path=style.css\nbody { color: red; }\nh1 { margin: 0; }\n```\n\n"
    "Reload the preview <script>alert(1)</script>.\n"
)


def feed_all(renderer: StreamRenderer, text: str, size: int) -> tuple[str, str]:
    """What the page shows after the whole text: the finished HTML and the open tail (a card grown in place)."""
    done, tail = "", ""
    for i in range(0, len(text), size):
        step = renderer.feed(text[i:i + size])
        done += step.append
        tail = step.tail if step.tail is not None else grow_card(tail, step)
    return done, tail


def grow_card(tail: str, step) -> str:
    """What static/js/chat.js does with a card step: the code added as text, the line count replaced."""
    tail = tail.replace("</code></pre></details>", html.escape(step.code) + "</code></pre></details>")
    return re.sub(r"(data-live-lines>)[^<]*", lambda m: m.group(1) + html.escape(step.lines), tail)


def test_streamed_html_matches_the_finished_blocks_and_is_sanitised():
    renderer = StreamRenderer("m1")
    done, tail = feed_all(renderer, REPLY, 3)
    page = done + tail
    assert "<strong>the app</strong>" in page
    assert '<span class="code-path">style.css</span>' in page and '<span class="nt">body</span>' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "```" not in page  # rendered, never raw markdown


def test_an_open_fence_is_a_file_card_with_a_live_line_count():
    renderer = StreamRenderer("m2")
    step = renderer.feed("Intro.\n\n```js path=app.js\nconst a = 1;\nconst b = '<b>';\n")
    assert "<p>Intro.</p>" in step.append
    assert '<details class="code-file code-file--open" open>' in step.tail
    assert '<span class="code-path">app.js</span>' in step.tail and "js · 2 lines · writing…" in step.tail
    assert "&lt;b&gt;" in step.tail and "<b>" not in step.tail
    step = renderer.feed("const c = 3;\n")
    # The card is not sent again: only its new code (text the page adds as a text node) and its count.
    assert step.append == "" and step.tail is None
    assert step.code == "const c = 3;\n" and step.lines == "js · 3 lines · writing…"
    assert json.loads(step.to_json()) == {"append": "", "tail": None, "code": "const c = 3;\n",
                                          "lines": "js · 3 lines · writing…"}
    step = renderer.feed("con")
    assert step.code == "con" and step.lines == "js · 4 lines · writing…"
    step = renderer.feed("st d = 4;\n`")  # a lone backtick may be the closing fence: held back
    assert step.code == "st d = 4;\n" and step.lines == "js · 4 lines · writing…"
    step = renderer.feed("``\n")
    assert '<figure class="code-file">' in step.append and step.tail == ""
    assert "const d = 4;" not in step.append and '<span class="nx">d</span>' in step.append


def test_appending_a_delta_re_renders_only_the_tail():
    renderer = StreamRenderer("m3")
    long_reply = "".join(f"Paragraph {i} with some words.\n\n" for i in range(200))
    feed_all(renderer, long_reply, 7)
    before = renderer.renders
    step = renderer.feed("One more")
    assert renderer.renders == before + 1  # the tail only, not the 200 finished paragraphs
    assert step.append == "" and step.tail == "<p>One more</p>\n"
    assert renderer.blocks == 200


def test_the_streamed_blocks_render_like_the_finished_reply():
    renderer = StreamRenderer("m4")
    done, tail = feed_all(renderer, "A\n\n- one\n- two\n\nB\n", 2)
    assert done + tail == "".join(str(render_reply_html(t, id_prefix="x")) for t in ("A\n\n", "- one\n- two\n\n", "B\n"))


def test_a_long_file_costs_the_same_per_delta_as_a_short_one():
    renderer = StreamRenderer("m5")
    renderer.feed("```python path=big.py\n")
    sent = []
    for i in range(2000):
        step = renderer.feed(f"x_{i} = {i}\n")
        sent.append(len(step.to_json()))
    # Each delta carries its own line, not the file so far: the last is as small as the first.
    assert max(sent) < 120 and sent[-1] - sent[0] <= 10
    assert renderer.renders == 0  # no Markdown render while the card grows
    step = renderer.feed("```\n")
    assert step.append.count("<span") > 2000 and renderer.renders == 1  # highlighted once, at the end


def test_a_card_split_at_any_point_shows_the_same_code():
    text = "Intro.\n\n```js path=a.js\nlet a = '<x>';\nlet b = `t`;\n"
    for size in (1, 2, 5, 11):
        done, tail = feed_all(StreamRenderer("m6"), text, size)
        assert done == "<p>Intro.</p>\n"
        assert "let a = &#x27;&lt;x&gt;&#x27;;\nlet b = `t`;\n</code>" in tail, size
        assert "js · 2 lines · writing…" in tail


def test_an_open_edit_block_streams_as_its_diff():
    renderer = StreamRenderer("m7")
    text = ("Change the title.\n\n```python path=app.py edit\n<<<<<<< SEARCH\ntitle = 'old'\n=======\n"
            "title = 'new <b>'\n>>>>>>> REPLACE\n")
    done, tail = feed_all(renderer, text, 4)
    assert "<<<<<<<" not in tail and "&lt;&lt;&lt;" not in tail and "=======" not in tail
    assert '<span class="diff-del">' in tail and "title = &#x27;old&#x27;" in tail
    assert '<span class="diff-add">' in tail and "&lt;b&gt;" in tail and "<b>" not in tail
    assert "edit · 1 change · writing…" in tail and "cut off" not in tail
    step = renderer.feed("```\n")
    assert step.tail == "" and "writing" not in step.append and '<span class="diff-add">' in step.append


def test_a_half_written_marker_is_not_shown_as_a_line():
    renderer = StreamRenderer("m8")
    step = renderer.feed("```python path=app.py edit\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REP")
    assert "REP" not in step.tail and step.tail.count('class="diff-add"') == 1
