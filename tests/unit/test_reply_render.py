"""The streaming renderer renders each finished block once and only the open tail again."""

from __future__ import annotations

from app.web.reply_markdown import render_reply_html
from app.web.reply_render import StreamRenderer

REPLY = (
    "Here is **the app**.\n\n"
    "```css path=style.css\nbody { color: red; }\nh1 { margin: 0; }\n```\n\n"
    "Reload the preview <script>alert(1)</script>.\n"
)


def feed_all(renderer: StreamRenderer, text: str, size: int) -> tuple[str, str]:
    done, tail = "", ""
    for i in range(0, len(text), size):
        step = renderer.feed(text[i:i + size])
        done += step.append
        tail = step.tail
    return done, tail


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
    assert step.append == "" and "3 lines" in step.tail
    step = renderer.feed("```\n")
    assert '<figure class="code-file">' in step.append and step.tail == ""


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
