"""Model replies rendered as HTML: Markdown, highlighting, file paths, and nothing executable."""

from html.parser import HTMLParser

import pytest

from app.web.reply_markdown import parse_fence_info, render_reply_html


def real_elements(html):
    """The tags and attributes a browser would build from `html` (escaped text is not a tag)."""
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "[click](javascript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "<iframe src=https://evil.example></iframe>",
        "<div style=\"background:url(javascript:alert(1))\">x</div>",
    ],
)
def test_hostile_model_text_is_shown_never_executed(hostile):
    html = str(render_reply_html(f"Before {hostile} after", id_prefix="m1"))
    elements = real_elements(html)
    assert not {tag for tag, _ in elements} & {"script", "img", "iframe", "div"}
    for _tag, attrs in elements:
        assert not [name for name, _ in attrs if name == "style" or name.startswith("on")]
        assert not [v for name, v in attrs if name == "href" and not v.startswith(("http", "mailto"))]
    assert "Before" in html and "after" in html


def test_markdown_is_rendered():
    html = str(render_reply_html("# Title\n\n**bold** and `code`\n\n- one\n- two", id_prefix="m1"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<li>one</li>" in html


def test_a_fenced_file_shows_its_path_a_copy_button_and_highlighting():
    html = str(render_reply_html("```python path=app/main.py\ndef go():\n    return '<b>'\n```", id_prefix="m7"))
    assert '<span class="code-path">app/main.py</span>' in html
    # Copy does nothing without JavaScript: hidden until the page's script shows it.
    assert '<button type="button" class="code-copy" data-copy-target="m7-1" hidden="">Copy</button>' in html
    assert '<pre class="highlight" id="m7-1" tabindex="0" aria-label="app/main.py">' in html
    assert '<span class="code-lines">python · 2 lines</span>' in html
    assert '<span class="k">def</span>' in html and "&lt;b&gt;" in html


def test_each_block_gets_its_own_id():
    html = str(render_reply_html("```\na\n```\n\n```js path=x.js\nb\n```", id_prefix="m2"))
    assert 'id="m2-1"' in html and 'id="m2-2"' in html and '<span class="code-language">code</span>' in html


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ("python path=app/main.py", ("python", "app/main.py")),
        ('html path="templates/a b.html"', ("html", "templates/a b.html")),
        ("path=Makefile", ("", "Makefile")),
        ("js", ("js", None)),
        ("", ("", None)),
    ],
)
def test_fence_info_strings(info, expected):
    assert parse_fence_info(info) == expected
