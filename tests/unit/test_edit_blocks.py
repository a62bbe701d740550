"""Edit blocks: the parser (reply_files rule 9) and the applier (snapshots/edits), step by step and by property."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.services.snapshots.edits import (
    AMBIGUOUS,
    FILE_MISSING,
    NOT_FOUND,
    TRUNCATED,
    apply_reply_blocks,
    apply_section,
)
from app.services.snapshots.reply_files import EditSection, parse_reply_files
from sandbox.emulators.openai_emulator import as_edit_reply, edit_sections, files_in_prompt


def edit_block(path: str, sections: list[tuple[list[str], list[str]]], fence: str = "```") -> str:
    body = []
    for search, replace in sections:
        body += ["<<<<<<< SEARCH", *search, "=======", *replace, ">>>>>>> REPLACE"]
    return "\n".join([f"{fence}python path={path} edit", *body, fence]) + "\n"


def edits_for(text: str, target: str) -> list[tuple[list[str], list[str]]]:
    """Sections turning `text` into `target`, built as the OpenAI emulator builds its edit replies."""
    return edit_sections(text, target)


def apply_text(files: dict[str, str], reply: str, finished: bool = True):
    parsed = parse_reply_files(reply, reply_finished=finished)
    return apply_reply_blocks(files, parsed.blocks)


# -- parser ------------------------------------------------------------------------------------------

def test_edit_block_parses_sections_in_order():
    reply = "Here:\n" + edit_block("app.py", [(["a = 1"], ["a = 2"]), (["b = 1"], ["b = 2", "c = 3"])])
    parsed = parse_reply_files(reply)
    (block,) = parsed.blocks
    assert block.edit and block.path == "app.py" and block.language == "python" and block.content == ""
    assert block.sections == (EditSection(("a = 1",), ("a = 2",)), EditSection(("b = 1",), ("b = 2", "c = 3")))
    assert parsed.has_files and parsed.has_edits and parsed.written == [] and parsed.edited_paths == ["app.py"]


def test_marker_look_alikes_are_text():
    search = ['x = "======="', "<<<<<<< HEAD", "  ======= "]
    replace = ["=======", ">>>>>>> REPLACED", 'y = ">>>>>>> REPLACE!"']
    (block,) = parse_reply_files(edit_block("a.py", [(search, replace)])).blocks
    # "  ======= " in SEARCH: a marker only without indentation; trailing spaces are ignored on markers.
    assert block.sections[0].search == tuple(search)
    assert block.sections[0].replace == tuple(replace)


def test_markers_in_a_whole_file_block_are_just_content():
    text = "# How to edit\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n"
    parsed = parse_reply_files(f"```markdown path=EDITING.md\n{text}```\n")
    assert parsed.written[0].content == text and not parsed.has_edits


def test_unfinished_section_is_incomplete_and_cut_off_block_is_dropped():
    reply = "```python path=a.py edit\n<<<<<<< SEARCH\na = 1\n=======\na = 2\n"
    assert parse_reply_files(reply, reply_finished=False).blocks == []
    (block,) = parse_reply_files(reply, reply_finished=True).blocks
    (section,) = block.sections
    assert section.search == ("a = 1",) and section.replace[0] == "a = 2" and not section.complete
    result = apply_text({"a.py": "a = 1\n"}, reply)
    assert [e.reason for e in result.errors] == [TRUNCATED] and not result.writes


def test_action_edit_and_delete_wins_over_edit():
    assert parse_reply_files("```path=a.py action=edit\n```\n").blocks[0].edit
    block = parse_reply_files("```path=a.py edit delete\n```\n").blocks[0]
    assert block.deleted and not block.edit


# -- matching steps --------------------------------------------------------------------------------

def test_exact_match_after_crlf_keeps_crlf():
    assert apply_section("a\r\nb\r\nc\r\n", EditSection(("b",), ("B",))) == "a\r\nB\r\nc\r\n"


def test_exact_match_is_whole_lines_not_substrings():
    assert apply_section("    print(1)\nprint(1)\n", EditSection(("print(1)",), ("print(2)",))) == "    print(1)\nprint(2)\n"


def test_trailing_whitespace_step():
    assert apply_section("a = 1   \nb\n", EditSection(("a = 1",), ("a = 2",))) == "a = 2\nb\n"


def test_indentation_shift_reindents_replace():
    text = "class A:\n    def f(self):\n        return 1\n"
    section = EditSection(("def f(self):", "    return 1"), ("def f(self):", "    return 2", "", "def g(self):", "    pass"))
    assert apply_section(text, section) == "class A:\n    def f(self):\n        return 2\n\n    def g(self):\n        pass\n"


def test_indentation_shift_the_other_way():
    section = EditSection(("    x = 1",), ("    x = 2",))
    assert apply_section("x = 1\n", section) == "x = 2\n"


def test_earlier_step_wins_over_later_one():
    # Exact finds one: the indented twin found only at step 3 does not make it ambiguous.
    assert apply_section("x = 1\n    x = 1\n", EditSection(("x = 1",), ("x = 2",))) == "x = 2\n    x = 1\n"


def test_failure_reasons():
    def reason(text, section):
        try:
            apply_section(text, section)
        except Exception as failure:  # noqa: BLE001
            return failure.reason
        return None

    assert reason("a\na\n", EditSection(("a",), ("b",))) == AMBIGUOUS
    assert reason("a  \na \n", EditSection(("a",), ("b",))) == AMBIGUOUS
    assert reason("  a\n    a\n", EditSection(("a",), ("b",))) == AMBIGUOUS
    assert reason("a\n", EditSection(("z",), ("b",))) == NOT_FOUND
    assert reason("a\n", EditSection((), ("b",))) == NOT_FOUND
    assert reason("a\n", EditSection(("a",), ("b",), complete=False)) == TRUNCATED


def test_all_or_nothing_with_every_failure_reported():
    reply = (edit_block("a.py", [(["a = 1"], ["a = 2"]), (["nope"], ["x"])])
             + edit_block("b.py", [(["b"], ["c"])]) + edit_block("gone.py", [(["q"], ["r"])]))
    result = apply_text({"a.py": "a = 1\n", "b.py": "b\nb\n"}, reply)
    assert not result.ok and result.writes == {} and result.deletions == []
    assert [(e.path, e.block, e.section, e.reason) for e in result.errors] == [
        ("a.py", 1, 2, NOT_FOUND), ("b.py", 2, 1, AMBIGUOUS), ("gone.py", 3, 1, FILE_MISSING)]
    assert all(e.detail.endswith(".") for e in result.errors)


def test_blocks_apply_in_reply_order():
    reply = ("```python path=new.py\nv = 1\n```\n" + edit_block("new.py", [(["v = 1"], ["v = 2"])])
             + edit_block("a.py", [(["a"], ["b"])]) + edit_block("a.py", [(["b"], ["c"])])
             + "```path=old.py delete\n```\n")
    result = apply_text({"a.py": "a\n", "old.py": "x\n"}, reply)
    assert result.ok and result.writes == {"new.py": "v = 1\n".replace("1", "2"), "a.py": "c\n"}
    assert result.deletions == ["old.py"]


# -- properties ------------------------------------------------------------------------------------

LINE = st.one_of(
    st.sampled_from(["", "x = 1", "    return x", "pass", 'print("=======")', "<<<<<<< HEAD", "  =======",
                     ">>>>>>> other", "# SEARCH", "\tindented", "a == b", "REPLACE"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="`~"),
            max_size=12),
)
FILE = st.lists(LINE, min_size=1, max_size=25).map(lambda lines: "\n".join(lines) + "\n")


def _mutate(data, text: str) -> str:
    lines = text.split("\n")[:-1]
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["insert", "delete", "change"]))
        at = data.draw(st.integers(0, max(0, len(lines) - (kind != "insert"))))
        if kind == "insert":
            lines.insert(at, data.draw(LINE))
        elif lines and kind == "delete":
            del lines[at]
        elif lines:
            lines[at] = data.draw(LINE)
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), FILE)
def test_property_apply_edits_for_target_is_target(data, text):
    target = _mutate(data, text)
    assume(target != text)
    reply = "Changed:\n" + edit_block("f.py", edits_for(text, target)) + "Done.\n"
    result = apply_text({"f.py": text}, reply)
    assert result.ok, result.errors
    assert result.writes["f.py"] == target


@settings(max_examples=200, deadline=None)
@given(st.data(), FILE)
def test_property_cut_off_reply_never_applies_a_partial_section(data, text):
    target = _mutate(data, text)
    assume(target != text)
    reply = edit_block("f.py", edits_for(text, target))
    sections = edits_for(text, target)
    states = [text]
    for search, replace in sections:
        states.append(apply_section(states[-1], EditSection(tuple(search), tuple(replace))))
    # Cut anywhere after the opening fence's line and before the closing fence is whole.
    cut = data.draw(st.integers(reply.index("\n") + 1, len(reply) - len("```\n")))
    partial = reply[:cut]
    stopped = apply_text({"f.py": text}, partial, finished=False)
    # A stopped reply cut before its closing fence drops the block: nothing is written.
    assert stopped.writes == {} and stopped.deletions == []
    finished = apply_text({"f.py": text}, partial, finished=True)
    # A finished reply that lacks its fence keeps whole sections only, and fails on a cut-off one:
    # what it writes is always the file after a whole number of sections.
    if finished.ok:
        assert finished.writes.get("f.py", text) in states
    else:
        assert finished.writes == {}


@settings(max_examples=200, deadline=None)
@given(FILE)
def test_property_whole_file_with_markers_is_verbatim(text):
    text = text + "<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n"
    parsed = parse_reply_files(f"```text path=notes.md\n{text}```\n")
    assert parsed.written[0].content == text and not parsed.has_edits


def test_the_emulator_answers_in_edit_blocks_for_files_the_prompt_carries():
    from app.services.chat.prompt import SYSTEM_PROMPT, ProjectContext, ProjectFile, build_prompt

    current = "def f():\n    return 1\n\nprint(f())\n"
    prompt = build_prompt(model="gpt-5", new_message="change app.py", history=[], max_completion_tokens=100,
                          project=ProjectContext("p", [ProjectFile("app.py", current)]))
    assert files_in_prompt(prompt.messages) == {"app.py": current} and "<<<<<<< SEARCH" in SYSTEM_PROMPT
    whole = "Done.\n```python path=app.py\ndef f():\n    return 2\n\nprint(f())\n```\n```css path=new.css\nb{}\n```\n"
    reply = as_edit_reply(whole, files_in_prompt(prompt.messages))
    assert "```python path=app.py edit\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n" in reply
    assert "```css path=new.css\nb{}\n```" in reply
    result = apply_text({"app.py": current}, reply)
    assert result.writes == {"app.py": current.replace("return 1", "return 2"), "new.css": "b{}\n"}
