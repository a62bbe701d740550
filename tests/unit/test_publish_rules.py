"""The pure rules of publishing: repository names, the file-level three-way merge, commit messages."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.providers.github.http import rate_limit_wait_s
from app.services.publish import plan_changes, repo_name_for, validate_repo_name


@pytest.mark.parametrize(("name", "slug"), [
    ("My App", "my-app"), ("Weather Bot (v2) ✓", "weather-bot-v2"), ("Café Über", "cafe-uber"),
    ("...", "sorya-project"), ("日本語", "sorya-project"), ("a" * 150, "a" * 100), ("--x--y--", "x-y"),
])
def test_repo_name_for(name, slug):
    assert repo_name_for(name) == slug
    validate_repo_name(slug)


@pytest.mark.parametrize("bad", ["", " ", "..", "a/b", "x.git", "a b", "a" * 101, "<script>"])
def test_invalid_repo_names(bad):
    with pytest.raises(InvalidRequest):
        validate_repo_name(bad)


def test_plan_writes_only_sorya_changes_on_top_of_the_remote():
    previous = {"a": "1", "b": "1", "c": "1"}
    desired = {"a": "2", "b": "1", "d": "1"}  # a changed, c deleted, d added, b untouched
    remote = {"a": "1", "b": "9", "c": "1", "theirs": "7"}  # someone changed b and added a file
    plan = plan_changes(desired, previous, remote)
    assert plan.conflicts == []
    assert plan.entries == {"a": "2", "c": None, "d": "1"}


def test_plan_reports_paths_changed_on_both_sides():
    plan = plan_changes({"a": "2", "b": "2"}, {"a": "1", "b": "1"}, {"a": "9", "b": "2"})
    assert plan.conflicts == ["a"]  # b already holds what Sorya wants: no conflict, nothing to write
    assert plan.entries == {}


def test_plan_deleting_a_file_someone_changed_is_a_conflict_and_already_deleted_is_fine():
    assert plan_changes({}, {"a": "1"}, {"a": "2"}).conflicts == ["a"]
    assert plan_changes({}, {"a": "1"}, {}).entries == {}


def test_first_push_into_a_repository_with_files():
    plan = plan_changes({"README.md": "x", "app.py": "y"}, {}, {"README.md": "other", "LICENSE": "z"})
    assert plan.conflicts == ["README.md"]
    assert plan.entries == {"app.py": "y"}
    overwrite = plan_changes({"README.md": "x"}, {}, {"README.md": "other"}, overwrite=True)
    assert overwrite.entries == {"README.md": "x"}


class FakeResponse:
    def __init__(self, status, headers):
        self.status_code, self.headers = status, headers


def test_rate_limit_detection():
    import time

    assert rate_limit_wait_s(FakeResponse(403, {})) is None  # a plain permission error
    assert rate_limit_wait_s(FakeResponse(403, {"Retry-After": "7"})) == 7
    reset = str(int(time.time()) + 100)
    wait = rate_limit_wait_s(FakeResponse(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}))
    assert 98 <= wait <= 100
    assert rate_limit_wait_s(FakeResponse(429, {})) == 60
    assert rate_limit_wait_s(FakeResponse(500, {"Retry-After": "1"})) is None
