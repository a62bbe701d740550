"""The pure half of the tree store: a file list becomes directory manifests and comes back unchanged."""

from __future__ import annotations

import json

from app.services.snapshots.trees import build_trees, flatten


def round_trip(files: dict[str, int]) -> dict[str, int]:
    root, manifests = build_trees(files)
    return flatten(root, lambda digest: json.loads(manifests[digest])) if root else {}


def test_a_file_list_round_trips_through_its_manifests():
    files = {"README.md": 1, "src/app.py": 2, "src/pkg/a.py": 3, "src/pkg/b.py": 4, "docs/x/y/z.md": 5}
    assert round_trip(files) == files


def test_a_folder_of_one_entry_stands_in_its_parent_and_a_lone_top_folder_in_the_root():
    root, manifests = build_trees({"a/b/c/d.txt": 1, "a/e.txt": 2})
    assert list(manifests) == [root]  # a/ is the root's only folder; b/ and c/ hold one entry each
    assert json.loads(manifests[root]) == {"a/b/c/d.txt": 1, "a/e.txt": 2}
    root, manifests = build_trees({"src/p1/a.py": 1, "src/p1/b.py": 2, "src/p2/c.py": 3, "src/p2/d.py": 4})
    assert len(manifests) == 3 and set(json.loads(manifests[root])) == {"src/p1/", "src/p2/"}


def test_identical_folders_share_one_manifest():
    files = {"x/one/a.txt": 1, "x/one/b.txt": 2, "y/one/a.txt": 1, "y/one/b.txt": 2}
    root, manifests = build_trees(files)
    assert len(manifests) == 2  # the root and the one manifest both `one/` folders name
    assert round_trip(files) == files


def test_the_same_files_give_the_same_hashes_in_any_order():
    files = {f"d{i % 3}/f{i}.txt": i for i in range(30)}
    assert build_trees(files) == build_trees(dict(reversed(list(files.items()))))


def test_changing_one_file_changes_only_the_manifests_on_its_path():
    files = {f"pkg{i % 4}/m{i}.py": i for i in range(40)}
    _, before = build_trees(files)
    files["pkg2/m2.py"] = 999
    _, after = build_trees(files)
    assert len(set(after) - set(before)) == 2  # the root and pkg2/


def test_a_file_and_a_folder_of_the_same_name_both_survive():
    files = {"a": 1, "a/b": 2}
    assert round_trip(files) == files


def test_no_files_is_no_tree():
    assert build_trees({}) == (None, {})


def test_deep_paths_and_unusual_names_round_trip():
    deep = "/".join(f"level{i}" for i in range(60)) + "/leaf.txt"
    files = {deep: 1, "ünï code/日本.md": 2, "spaces in/name .txt": 3, "quote\"s/'x'.js": 4}
    assert round_trip(files) == files


def test_the_manifest_memo_is_bounded_by_entries_not_by_manifests():
    from app.services.snapshots.trees import _MANIFESTS

    cache = type(_MANIFESTS)(10, weigh=_MANIFESTS.weigh)
    cache.put("big", {f"f{i}": i for i in range(6)})
    cache.put("small", {"a": 1, "b": 2})
    cache.put("other", {f"g{i}": i for i in range(4)})  # 12 entries: the least recently used goes
    assert cache.get("big") is None and cache.get("small") is not None and cache.get("other") is not None
    assert cache.weight == 6
