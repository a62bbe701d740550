"""The prompt with edits (elided history, history budget) and edit blocks shown as diffs."""

from __future__ import annotations

from app.services.chat.prompt import (
    SYSTEM_PROMPT,
    WHOLE_FILE_SYSTEM_PROMPT,
    HistoryMessage,
    ProjectContext,
    ProjectFile,
    build_prompt,
)
from app.services.snapshots.reply_files import EditSection, elide_file_blocks, parse_reply_files
from app.web.reply_markdown import render_edit_block_html, render_reply_html

REPLY = ("I wrote the app.\n\n```python path=app.py\nprint('a' * 500)\n```\n\n```css path=style.css edit\n"
         "<<<<<<< SEARCH\nb{}\n=======\nb{x}\n>>>>>>> REPLACE\n```\n\n```bash\npython app.py\n```\nRun it.")


def test_elision_keeps_prose_and_snippets_and_names_the_version():
    text = elide_file_blocks(REPLY, version=7)
    assert text == ("I wrote the app.\n\n[wrote app.py; edited style.css → now in v7]\n\n\n"
                    "```bash\npython app.py\n```\nRun it.")
    assert elide_file_blocks("no files here") == "no files here"


def test_the_system_prompt_examples_parse_as_the_contract_says():
    parsed = parse_reply_files(SYSTEM_PROMPT)
    assert [(b.path, b.edit) for b in parsed.blocks] == [("app/main.py", True), ("static/style.css", False)]
    assert parsed.blocks[0].sections[0].search == ("def greet():", '    return "hello"')


def test_edits_elide_earlier_replies_and_the_old_prompt_does_not():
    history = [HistoryMessage("user", "write app.py"), HistoryMessage("assistant", REPLY, 3)]
    edited = build_prompt(model="gpt-5", new_message="now?", history=history, max_completion_tokens=100)
    whole = build_prompt(model="gpt-5", new_message="now?", history=history, max_completion_tokens=100,
                         edits=False)
    assert edited.messages[0]["content"] == SYSTEM_PROMPT and whole.messages[0]["content"] == WHOLE_FILE_SYSTEM_PROMPT
    assert "now in v3" in edited.messages[2]["content"] and "'a' * 500" not in edited.messages[2]["content"]
    assert whole.messages[2]["content"] == REPLY
    assert edited.breakdown["history"] < whole.breakdown["history"] / 1.5
    assert set(edited.breakdown) == {"instructions", "message", "history"}
    assert sum(edited.breakdown.values()) == edited.prompt_tokens  # the parts add up to the estimate


def test_the_history_budget_keeps_the_last_exchange_and_drops_older_turns_first():
    history = [HistoryMessage("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 40) for i in range(20)]
    prompt = build_prompt(model="gpt-5", new_message="go", history=history, max_completion_tokens=100,
                          history_budget_tokens=120)
    kept = [m["content"] for m in prompt.messages[1:-1]]
    assert kept[-2:] == [history[-2].content, history[-1].content]
    assert 2 <= prompt.history_kept < 20 and kept == [m.content for m in history[-len(kept):]]
    tiny = build_prompt(model="gpt-5", new_message="go", history=history, max_completion_tokens=100,
                        history_budget_tokens=1)
    assert tiny.history_kept == 2  # the last exchange, whatever the budget


def test_files_come_from_the_last_exchange_with_edits():
    files = [ProjectFile(f"m{i}.py", f"x = {i}\n") for i in range(5)]
    history = [HistoryMessage("user", "fix m1.py"), HistoryMessage("assistant", "done"),
               HistoryMessage("user", "fix m2.py"), HistoryMessage("assistant", "done")]
    edited = build_prompt(model="gpt-5", new_message="and m3.py", history=history, max_completion_tokens=100,
                          project=ProjectContext("p", files))
    whole = build_prompt(model="gpt-5", new_message="and m3.py", history=history, max_completion_tokens=100,
                         project=ProjectContext("p", files), edits=False)
    assert edited.files_included == ["m3.py", "m2.py"] and whole.files_included == ["m3.py", "m2.py", "m1.py"]
    assert edited.breakdown["files"] > 0


def test_an_edit_block_renders_as_an_escaped_diff():
    html = str(render_edit_block_html("a<b>.py", [EditSection(("x = 1", "keep"), ("x = 2", "keep", "<script>")),
                                                  EditSection(("y",), ("z",), complete=False)]))
    assert "a&lt;b&gt;.py" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert html.count('class="diff-del"') == 2 and html.count('class="diff-add"') == 3  # x = 2, <script>, z
    assert html.count('class="diff-same"') == 1 and "cut off" in html and "2 changes" in html


def test_a_reply_shows_edit_blocks_as_diffs_not_markers():
    html = str(render_reply_html("```python path=a.py edit\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n"
                                 ">>>>>>> REPLACE\n```\n", id_prefix="t"))
    assert "SEARCH" not in html and "=======" not in html and "diff-del" in html and "diff-add" in html
    plain = str(render_reply_html("```markdown path=EDIT.md\n<<<<<<< SEARCH\n```\n", id_prefix="u"))
    assert "SEARCH" in plain and "diff-del" not in plain
