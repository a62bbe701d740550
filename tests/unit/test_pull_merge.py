"""The line-level three-way merge of a pull (`app.services.publish.merge`), on fixed conflict cases and
hypothesis properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.services.publish.merge import has_conflict_markers, merge_text

lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "d\n", "é\n", "x = 1\n", "\n"]), max_size=12)
texts = lines.map(lambda ls: "".join(ls).encode())


@given(texts, texts)
def test_a_side_that_did_not_change_takes_the_other(base, changed):
    assert merge_text(base, base, changed).content == changed
    assert merge_text(base, changed, base).content == changed
    assert not merge_text(base, base, changed).conflicted


@given(texts, texts)
def test_the_same_change_on_both_sides_is_that_change(base, changed):
    result = merge_text(base, changed, changed)
    assert result.content == changed and not result.conflicted


@given(lines, st.text(alphabet="XYZ", min_size=1, max_size=3), st.text(alphabet="PQR", min_size=1, max_size=3))
def test_edits_at_both_ends_of_a_long_file_merge_without_conflict(body, top, bottom):
    base_lines = ["head\n", "1\n", "2\n", "3\n", *body, "4\n", "5\n", "6\n", "tail\n"]
    ours = "".join([top + "\n", *base_lines[1:]]).encode()
    theirs = "".join([*base_lines[:-1], bottom + "\n"]).encode()
    result = merge_text("".join(base_lines).encode(), ours, theirs)
    assert not result.conflicted
    assert result.content == "".join([top + "\n", *base_lines[1:-1], bottom + "\n"]).encode()


def test_the_same_line_changed_differently_conflicts_with_markers():
    result = merge_text(b"a\nb\nc\n", b"a\nOURS\nc\n", b"a\nTHEIRS\nc\n")
    assert result.conflicted
    assert result.content == b"a\n<<<<<<< Sorya\nOURS\n=======\nTHEIRS\n>>>>>>> GitHub\nc\n"
    assert has_conflict_markers(result.content)
    assert not has_conflict_markers(b"a\n<<<<<<< not ours\n")


def test_both_sides_adding_the_same_path_differently_conflicts():
    result = merge_text(None, b"mine\n", b"theirs\n")
    assert result.conflicted and has_conflict_markers(result.content)


def test_binary_files_changed_on_both_sides_keep_ours_and_conflict():
    result = merge_text(b"\0base", b"\0ours", b"\0theirs")
    assert result.conflicted and result.content == b"\0ours"
