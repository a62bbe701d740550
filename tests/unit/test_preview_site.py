"""Which page a version's preview opens, and whether a browser can run the version at all."""

from __future__ import annotations

import pytest

from app.services.snapshots.site import SITE_NOT_RUNNABLE, SITE_STATIC, preview_entry_path, site_plan
from app.web.snapshot_preview import inject_console_script


@pytest.mark.parametrize(
    ("files", "touched", "entry"),
    [
        (["README.md", "about.html", "index.html"], [], "index.html"),
        (["README.md", "pages/only.html", "style.css"], [], "pages/only.html"),
        (["a.html", "b.html", "c.html"], ["style.css", "b.html"], "b.html"),
        (["docs/guide.html", "public/index.html", "public/deep/index.html"], [], "public/index.html"),
        (["z.html", "a/b.html"], [], "z.html"),
        (["app.py", "templates/base.html.j2"], [], None),
        ([], [], None),
    ],
)
def test_the_entry_page(files, touched, entry):
    assert preview_entry_path(files, touched) == entry


def test_a_python_app_is_not_runnable_and_says_so():
    plan = site_plan(["app.py", "requirements.txt", "templates/index.jinja"])
    assert (plan.entry, plan.site_kind) == (None, SITE_NOT_RUNNABLE)
    assert plan.message.startswith("This version is a Python app; a browser cannot run it")
    assert "Node.js" in site_plan(["package.json", "server.js"]).message
    assert site_plan(["index.html", "app.py"]).site_kind == SITE_STATIC


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (b"<!doctype html><html lang=en><head><meta charset=utf-8><script src=app.js></script></head>",
         b"<!doctype html><html lang=en><head>TAG<meta charset=utf-8><script src=app.js></script></head>"),
        (b"<!DOCTYPE html>\n<HTML><body><script>x()</script>", b"<!DOCTYPE html>\n<HTML>TAG<body><script>x()</script>"),
        (b"<!doctype html><p>hi</p>", b"<!doctype html>TAG<p>hi</p>"),
        (b"<p>hi</p>", b"TAG<p>hi</p>"),
        (b"<header>x</header><head data-x='1'>", b"<header>x</header><head data-x='1'>TAG"),
    ],
)
def test_the_console_script_goes_first_in_the_head_never_before_the_doctype(html, expected):
    assert inject_console_script(html, b"TAG") == expected
