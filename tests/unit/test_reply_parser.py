"""What counts as a file in a reply (app.services.snapshots.reply_files), and which paths are safe."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.snapshots import check_path, clean_path, parse_reply_files
from tests.snapshot_helpers import fenced_file


def files_of(text: str, **kwargs) -> dict[str, str]:
    return {f.path: f.content for f in parse_reply_files(text, **kwargs).files if not f.deleted}


def test_contract_form_with_language_and_path():
    text = "Intro\n```python path=app/main.py\nprint('hi')\n```\nOutro"
    parsed = parse_reply_files(text)
    assert [(f.path, f.content, f.language) for f in parsed.files] == [("app/main.py", "print('hi')\n", "python")]
    assert parsed.warnings == []


@pytest.mark.parametrize(
    "opener",
    ["```path=a/b.txt", "```text path=a/b.txt", '```text path="a/b.txt"', "```text file=a/b.txt",
     "```text filename='a/b.txt'", "~~~ path=a/b.txt", "```text path=./a/b.txt", "   ```text path=a/b.txt"],
)
def test_path_in_the_info_string_in_every_spelling(opener):
    fence = "~~~" if opener.startswith("~") else "```"
    assert files_of(f"{opener}\nhello\n{fence}\n") == {"a/b.txt": "hello\n"}


@pytest.mark.parametrize(
    "first_line",
    ["// path: src/app.js", "# file: src/app.js", "-- path: src/app.js", "; filename: src/app.js",
     "/* path: src/app.js */", "<!-- path: src/app.js -->", "// PATH:   src/app.js  "],
)
def test_path_in_a_first_line_comment_is_metadata_not_content(first_line):
    assert files_of(f"```js\n{first_line}\nlet a = 1;\n```\n") == {"src/app.js": "let a = 1;\n"}


def test_blocks_without_a_path_are_examples_not_files():
    text = "```bash\npip install flask\n```\n\n```python\nprint(1)\n```\n"
    parsed = parse_reply_files(text)
    assert parsed.files == [] and not parsed.has_files and parsed.warnings == []


def test_nested_fences_inside_a_markdown_file_with_the_same_fence():
    text = "```markdown path=README.md\n# Title\n```bash\nmake run\n```\nMore text\n```\nafter\n"
    assert files_of(text) == {"README.md": "# Title\n```bash\nmake run\n```\nMore text\n"}


def test_a_longer_outer_fence_holds_shorter_fences():
    text = "````markdown path=README.md\n```\nplain block\n```\n````\n"
    assert files_of(text) == {"README.md": "```\nplain block\n```\n"}


def test_tilde_fence_is_not_closed_by_backticks():
    text = "~~~ path=doc.md\n```\ncode\n```\n~~~\n"
    assert files_of(text) == {"doc.md": "```\ncode\n```\n"}


def test_crlf_and_lone_cr_read_like_lf():
    lf = "```py path=a.py\nx = 1\ny = 2\n```\n"
    assert files_of(lf.replace("\n", "\r\n")) == files_of(lf) == files_of(lf.replace("\n", "\r"))


def test_indented_block_inside_a_list_item_is_dedented():
    text = "1. Create the file:\n\n   ```toml path=pyproject.toml\n   [tool]\n     nested = 1\n   ```\n"
    assert files_of(text) == {"pyproject.toml": "[tool]\n  nested = 1\n"}


def test_empty_block_is_an_empty_file():
    assert files_of("```path=empty.txt\n```\n") == {"empty.txt": ""}


def test_same_path_twice_last_wins_and_the_person_is_told():
    text = "```path=a.py\nv1\n```\n```path=b.py\nb\n```\n```path=a.py\nv2\n```\n"
    parsed = parse_reply_files(text)
    assert files_of(text) == {"a.py": "v2\n", "b.py": "b\n"}
    assert [f.path for f in parsed.files] == ["b.py", "a.py"]  # in the order of the winning blocks
    assert "a.py appears 2 times in this reply; the last one was kept." in parsed.warnings


def test_missing_final_fence_in_a_finished_reply_keeps_the_file_with_a_warning():
    parsed = parse_reply_files("```python path=app.py\nprint(1)\nprint(2)")
    assert [(f.path, f.content, f.truncated) for f in parsed.files] == [("app.py", "print(1)\nprint(2)\n", True)]
    assert any("no closing fence" in w for w in parsed.warnings)


def test_missing_final_fence_in_a_stopped_reply_leaves_the_cut_file_out():
    text = "```path=done.py\nok\n```\n```python path=cut.py\ndef f(\n"
    parsed = parse_reply_files(text, reply_finished=False)
    assert [f.path for f in parsed.files] == ["done.py"]
    assert parsed.warnings == ["cut.py was cut off when the reply stopped, so it was left out."]


def test_explicit_deletion():
    parsed = parse_reply_files("```path=old.py delete\n```\n```text path=gone.txt action=delete\nignored\n```\n")
    assert parsed.deleted_paths == ["old.py", "gone.txt"]
    assert parsed.written == []


def test_inline_triple_backticks_are_not_fences():
    assert parse_reply_files("Use ```path=x``` like this\nmore").files == []


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../etc/passwd", "goes above the project folder (..)"),
        ("a/../../b", "goes above the project folder (..)"),
        ("/etc/passwd", "is absolute; paths must be relative to the project folder"),
        ("C:/Windows/x", "starts with a drive letter; paths must be relative to the project folder"),
        ("c:evil", "starts with a drive letter; paths must be relative to the project folder"),
        (".git/config", "is inside .git, which holds Git's own data"),
        ("sub/.GIT/hooks/pre-commit", "is inside .git, which holds Git's own data"),
        ("a\x00b", "contains an invisible or control character (U+0000)"),
        ("a\x1bb", "contains an invisible or control character (U+001B)"),
        ("a\x85b", "contains an invisible or control character (U+0085)"),
        ("x\u202egnp.exe", "contains an invisible or control character (U+202E)"),  # right-to-left override
        ("a\u200bb.txt", "contains an invisible or control character (U+200B)"),  # zero-width space
        ("bom\ufeff.py", "contains an invisible or control character (U+FEFF)"),
        ("a\u2028b", "contains an invisible or control character (U+2028)"),  # line separator
        ("a\u2029b", "contains an invisible or control character (U+2029)"),  # paragraph separator
        ("a\ud800b", "contains an invisible or control character (U+D800)"),  # a lone surrogate
        ("a\\b.txt", "uses a backslash; separate folders with /"),
        ("a//b", "has an empty folder name (//)"),
        ("a/./b", "has a '.' folder name"),
        ("dir/", "names a folder, not a file"),
        ("", "is empty"),
        ("x" * 256, "has a name longer than 255 bytes"),
        ("é" * 128, "has a name longer than 255 bytes"),  # 256 bytes in UTF-8
        ("/".join(["d" * 200] * 6), "is longer than 1,024 bytes"),
    ],
)
def test_unsafe_paths_are_refused_with_a_reason(path, reason):
    assert check_path(path) == reason


def test_a_reply_naming_a_file_with_an_invisible_character_is_refused_with_the_reason():
    parsed = parse_reply_files("```text path=invoice\u202efdp.exe\nMZ\n```\n\n```text path=ok.txt\nfine\n```\n")
    assert [f.path for f in parsed.files] == ["ok.txt"]
    assert [(r.path, r.reason) for r in parsed.refused] == [
        ("invoice\u202efdp.exe", "contains an invisible or control character (U+202E)")
    ]
    assert "U+202E" in parsed.warnings[-1] and "\u202e" not in parsed.warnings[-1]  # shown escaped, never applied


def test_visible_non_ascii_names_stay_allowed():
    for path in ("café/menu.txt", "日本語/ファイル.md", "emoji/🚀.txt", "a b/c d.txt", "ünïcödé\u00a0nbsp.txt"):
        assert check_path(path) is None, path


@pytest.mark.parametrize("path", ["a.py", "src/app/main.py", ".github/workflows/ci.yml", ".gitignore",
                                  "docs/ünïcode ſpaces.md", "x" * 255, ".env", "a/b/c/d/e/f.txt"])
def test_safe_paths_pass(path):
    assert check_path(path) is None


def test_unsafe_paths_in_a_reply_are_refused_and_listed_never_returned():
    text = "```path=../../evil.sh\nrm -rf /\n```\n```path=.git/hooks/post-checkout\nx\n```\n```path=ok.txt\nfine\n```\n"
    parsed = parse_reply_files(text)
    assert [f.path for f in parsed.files] == ["ok.txt"]
    assert [(r.path, r.reason) for r in parsed.refused] == [
        ("../../evil.sh", "goes above the project folder (..)"),
        (".git/hooks/post-checkout", "is inside .git, which holds Git's own data"),
    ]
    assert "Refused '../../evil.sh' goes above the project folder (..)." in parsed.warnings


# -- properties ------------------------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\\\"' `~\t"),
    min_size=1, max_size=12,
).filter(lambda s: s not in (".", "..") and s.lower() != ".git" and ":" not in s[:2] and s.strip() == s)
safe_path = (
    st.lists(segment, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda p: check_path(p) is None and p == clean_path(p))
)
# File lines that never look like a fence of their own (a fence line inside a file is the nesting case).
content_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=40,
).filter(lambda line: not line.lstrip(" ").startswith(("```", "~~~")))
file_content = st.lists(content_line, max_size=8).map(lambda lines: "".join(line + "\n" for line in lines))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(safe_path, file_content, min_size=1, max_size=6))
def test_rendered_files_parse_back_exactly(files):
    reply = "Here you go:\n\n" + "\n".join(fenced_file(p, c, "text") for p, c in files.items()) + "\nDone."
    parsed = parse_reply_files(reply)
    assert {f.path: f.content for f in parsed.files} == files
    assert parsed.warnings == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_without_error_and_only_to_safe_paths(text):
    parsed = parse_reply_files(text)
    for item in parsed.files:
        assert check_path(item.path) is None
    assert len({f.path for f in parsed.files}) == len(parsed.files)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(safe_path, file_content, min_size=1, max_size=4), st.booleans())
def test_line_endings_never_change_what_is_parsed(files, finished):
    reply = "\n".join(fenced_file(p, c) for p, c in files.items())
    as_lf = parse_reply_files(reply, reply_finished=finished)
    as_crlf = parse_reply_files(reply.replace("\n", "\r\n"), reply_finished=finished)
    assert as_lf == as_crlf


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(safe_path, file_content, min_size=1, max_size=4), st.data())
def test_a_reply_cut_anywhere_yields_only_whole_files_when_stopped(files, data):
    reply = "".join(fenced_file(p, c) for p, c in files.items())
    cut = data.draw(st.integers(min_value=0, max_value=len(reply)))
    parsed = parse_reply_files(reply[:cut], reply_finished=False)
    for item in parsed.files:
        assert files[item.path] == item.content


# -- linear time on hostile lines --------------------------------------------------------------------

def best_parse_time(text: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        parse_reply_files(text)
        best = min(best, time.perf_counter() - started)
    return best


def whitespace_run(length: int) -> str:
    return (" \t" * length)[:length]


@pytest.mark.parametrize(
    "make_reply",
    [
        # A first-line path comment padded with whitespace before a letter: the old pattern's `\s*` around a
        # lazy `.+?` tried every split of the run (cubic: 500 characters already took seconds).
        lambda n: f"```js\n// path: a{whitespace_run(n)}b\nlet a = 1;\n```\n",
        lambda n: f"```html\n<!-- file: a{whitespace_run(n)}b{whitespace_run(n)}-->\n<p>\n```\n",
        # One long word in an info string: every start inside it rescanned the word looking for `=`.
        lambda n: "```" + "a" * n + "\ncode\n```\n",
        lambda n: "```" + "1a" * (n // 2) + "\ncode\n```\n",
    ],
    ids=["first-line-comment", "first-line-html-comment", "info-word", "info-mixed-word"],
)
def test_parse_time_grows_linearly_with_a_hostile_line(make_reply):
    small, large = best_parse_time(make_reply(1_000)), best_parse_time(make_reply(8_000))
    # Eight times the text may take about eight times as long; a quadratic pattern takes 64 times.
    assert large / max(small, 1e-6) < 20, (small, large)


def reference_first_line_path(line: str) -> str | None:
    """The path the first-line comment names, by the original pattern (fine on short lines only)."""
    old = re.compile(
        r"^\s*(?://|#|--|;|/\*|<!--)\s*(?:path|file|filename)\s*:\s*(?P<path>.+?)\s*(?:\*/|-->)?\s*$",
        re.IGNORECASE,
    )
    match = old.match(line)
    return match.group("path") if match else None


comment_line = st.builds(
    lambda lead, opener, key, gap, body, closer, tail: f"{lead}{opener}{gap}{key}:{body}{closer}{tail}",
    st.text(alphabet=" \t\u00a0\u2003", max_size=4),
    st.sampled_from(["//", "#", "--", ";", "/*", "<!--"]),
    st.sampled_from(["path", "FILE", "filename"]),
    st.text(alphabet=" \t", max_size=3),
    st.text(alphabet=" \t\u00a0\u3000ab/.*->", max_size=16),
    st.sampled_from(["", "*/", "-->", " */", "  -->"]),
    st.text(alphabet=" \t\u2003", max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(comment_line)
def test_a_whitespace_heavy_first_line_reads_as_the_original_pattern_did(line):
    parsed = parse_reply_files(f"```text\n{line}\nbody\n```\n")
    expected = reference_first_line_path(line)
    if expected is None:
        assert parsed.files == [] and parsed.refused == []
        return
    path = clean_path(expected)
    if check_path(path) is None:
        assert [(f.path, f.content) for f in parsed.files] == [(path, "body\n")]
    else:
        assert parsed.files == [] and [r.reason for r in parsed.refused] == [check_path(path)]
