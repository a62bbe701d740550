"""Line diffs of a changed file (app.services.snapshots.diff): correct hunks, and a bounded amount of work."""

from __future__ import annotations

import difflib

from app.services.snapshots import FileDiff, diff_file, diff_lines
from app.services.snapshots import diff as diff_module


class RecordingMatcher(difflib.SequenceMatcher):
    """difflib's matcher, remembering the size of every pair of sequences it was asked to compare."""

    sizes: list[tuple[int, int]] = []

    def __init__(self, isjunk=None, a="", b="", autojunk=True):
        RecordingMatcher.sizes.append((len(a), len(b)))
        super().__init__(isjunk, a, b, autojunk)


def test_one_change_in_twelve_thousand_identical_lines_is_found_and_compared_alone(monkeypatch):
    RecordingMatcher.sizes = []
    monkeypatch.setattr(diff_module.difflib, "SequenceMatcher", RecordingMatcher)
    old = ["x = 1"] * 12_000
    new = list(old)
    new[6_000] = "x = 2"
    result = diff_file("big.py", ("\n".join(old) + "\n").encode(), ("\n".join(new) + "\n").encode())

    assert not result.too_large
    assert result.unified_diff == (
        "--- a/big.py\n+++ b/big.py\n@@ -5998,7 +5998,7 @@\n"
        + " x = 1\n" * 3 + "-x = 1\n+x = 2\n" + " x = 1\n" * 3
    )
    assert (result.additions, result.deletions) == (1, 1)
    # The 11,999 equal lines around the change are matched by trimming, not by difflib: its work on
    # identical lines is quadratic (14 s for this file), on the one differing line it is nothing.
    assert RecordingMatcher.sizes and max(max(pair) for pair in RecordingMatcher.sizes) <= 1


def test_a_pair_past_the_work_budget_is_marked_too_large_with_both_sizes():
    # Alternating lines swapped: every line matches half of the other side, well past the budget,
    # though far under the line limit.
    old_text = "a\nb\n" * 1_500
    new_text = "b\na\n" * 1_500
    assert 3_000 < diff_module.DIFF_MAX_LINES
    result = diff_file("flip.txt", old_text.encode(), new_text.encode())

    assert result.too_large and result.hunks == []
    assert (result.old_size, result.new_size) == (len(old_text), len(new_text))
    assert "too large to compare line by line" in result.unified_diff


def test_comparison_estimate_counts_the_matches_difflib_would_walk():
    assert diff_module.estimated_comparisons(["a", "b", "a"], ["a", "a", "c"]) == 4
    assert diff_module.estimated_comparisons(["x"] * 100, ["x"] * 100) == 10_000
    assert diff_module.estimated_comparisons(["x"], ["y"]) == 0


def test_trimmed_diff_equals_difflib_where_the_change_is_unambiguous():
    old = [f"line {i}" for i in range(200)]
    new = old[:50] + ["inserted"] + old[50:120] + old[125:] + ["tail"]
    ours = FileDiff("f", "changed", 0, 0, hunks=diff_lines(old, new)).unified_diff
    theirs = "\n".join(difflib.unified_diff(old, new, "a/f", "b/f", lineterm="")) + "\n"
    assert ours == theirs
