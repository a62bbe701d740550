"""`safe_next_path` is the one check of every redirect target a request names: hostile targets are refused.

A browser reading `Location` drops tabs and newlines anywhere, strips leading spaces and control
characters, and reads a backslash as a slash, so each of these would leave the site (or split the header)
if let through. Percent-encoded forms are refused too: some proxy or later redirect may decode them.
"""

from __future__ import annotations

import pytest

from app import create_app


@pytest.fixture
def request_context(tmp_path):
    from tests.conftest import build_config

    application = create_app(build_config(str(tmp_path)))
    with application.test_request_context():
        yield


HOSTILE_TARGETS = [
    # scheme-relative, and what browsers turn into it
    ("//evil.example", "scheme-relative"),
    ("///evil.example", "triple slash"),
    ("/\t/evil.example", "tab between the slashes"),
    ("/\n/evil.example", "newline between the slashes"),
    ("/\r/x", "carriage return"),
    ("/ok\r\nSet-Cookie: a=b", "header splitting"),
    ("/\\evil.example", "slash backslash"),
    ("/\\/evil.example", "slash backslash slash"),
    ("\\\\evil.example", "two backslashes"),
    ("\t//evil.example", "leading tab"),
    (" //evil.example", "leading space"),
    # percent-encoded variants
    ("/%2Fevil.example", "encoded second slash"),
    ("/%2f%2fevil.example", "encoded slashes, lower case"),
    ("/%5Cevil.example", "encoded backslash"),
    ("/%09/evil.example", "encoded tab"),
    ("/%0d%0aSet-Cookie:%20a=b", "encoded CR LF"),
    ("/%00", "encoded NUL"),
    ("/%252F/evil.example", "double-encoded slash"),
    ("/%25252F/evil.example", "triple-encoded slash"),
    # any control character, C0, DEL, C1 and Unicode line separators and format characters
    ("/ok\x00", "NUL"),
    ("/ok\x7f", "DEL"),
    ("/ok\x85", "C1 next line"),
    ("/ok\u2028", "line separator"),
    ("/ok\u202e", "right-to-left override"),
    ("/ok%E2%80%A8", "encoded line separator"),
    # absolute and not-a-path
    ("https://evil.example/", "absolute"),
    ("http:/evil.example", "scheme with one slash"),
    ("javascript:alert(1)", "script"),
    ("account", "relative"),
    ("", "empty"),
    ("/" + "a" * 2001, "too long"),
]


@pytest.mark.parametrize(("target", "why"), HOSTILE_TARGETS, ids=[why for _, why in HOSTILE_TARGETS])
def test_hostile_targets_are_refused(request_context, target, why):
    from app.web.security import safe_next_path

    assert safe_next_path(target) is None, why


@pytest.mark.parametrize("target", ["/", "/projects/3/publish", "/projects?q=a%20b#top", "/a/b%2F%2Fc",
                                    "/files/%C3%A9t%C3%A9.txt"])
def test_paths_on_this_site_pass_unchanged(request_context, target):
    from app.web.security import safe_next_path

    assert safe_next_path(target) == target
