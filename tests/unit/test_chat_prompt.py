"""The context budget: what the model is sent, and what is dropped to fit its window."""

from app.services.chat.prompt import (
    MESSAGE_OVERHEAD_TOKENS,
    SYSTEM_PROMPT,
    HistoryMessage,
    ProjectContext,
    ProjectFile,
    build_prompt,
    context_window_for,
    estimate_prompt_tokens,
    estimate_tokens,
    referenced_files,
)


def history_of(count, words=50):
    return [HistoryMessage("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * words) for i in range(count)]


def test_estimate_counts_words_by_started_four_characters_and_punctuation_as_one():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    assert estimate_tokens("hi, there!") == 1 + 1 + 2 + 1
    assert estimate_tokens("日本語") == 1  # one run of word characters
    assert estimate_tokens("a" * 400) == 100


def test_the_system_prompt_asks_for_the_contracts_fenced_path_form():
    prompt = build_prompt(model="gpt-5", new_message="hi", history=[], max_completion_tokens=1000)
    assert prompt.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "```python path=app/main.py" in SYSTEM_PROMPT and ".." in SYSTEM_PROMPT
    assert prompt.messages[-1] == {"role": "user", "content": "hi"}
    assert prompt.prompt_tokens == estimate_prompt_tokens(prompt.messages)


def test_history_fits_whole_when_there_is_room():
    history = history_of(10)
    prompt = build_prompt(model="gpt-5", new_message="next", history=history, max_completion_tokens=1000)
    assert prompt.history_kept == 10 and prompt.history_dropped == 0
    assert [m["content"] for m in prompt.messages[1:-1]] == [m.content for m in history]


def test_history_is_trimmed_oldest_first_to_the_context_window():
    history = history_of(40)  # about 60 tokens each
    window = 2000
    prompt = build_prompt(model="tiny", new_message="next", history=history, max_completion_tokens=500,
                          context_window=window)
    assert 0 < prompt.history_kept < 40 and prompt.history_kept + prompt.history_dropped == 40
    kept = [m["content"] for m in prompt.messages[1:-1]]
    assert kept == [m.content for m in history[-prompt.history_kept:]]  # the newest, in order
    assert prompt.prompt_tokens + 500 <= window
    # One message more would not have fitted.
    next_older = history[-prompt.history_kept - 1]
    assert prompt.prompt_tokens + MESSAGE_OVERHEAD_TOKENS + estimate_tokens(next_older.content) + 500 > window * 0.95


def test_the_reply_room_is_taken_from_the_window():
    history = history_of(40)
    roomy = build_prompt(model="m", new_message="x", history=history, max_completion_tokens=100, context_window=3000)
    tight = build_prompt(model="m", new_message="x", history=history, max_completion_tokens=2000, context_window=3000)
    assert tight.history_kept < roomy.history_kept


def test_empty_messages_are_not_sent():
    history = [HistoryMessage("user", "q"), HistoryMessage("assistant", ""), HistoryMessage("user", "r")]
    prompt = build_prompt(model="gpt-5", new_message="s", history=history, max_completion_tokens=10)
    assert [m["content"] for m in prompt.messages[1:]] == ["q", "r", "s"]


def test_known_models_have_their_window_and_others_a_safe_default():
    assert context_window_for("gpt-5") == 400_000
    assert context_window_for("my-local-llama") == 128_000


def project_with(files):
    return ProjectContext("Shop", [ProjectFile(path, content) for path, content in files.items()])


def test_referenced_files_by_path_or_unique_file_name():
    files = [ProjectFile(p, None) for p in ("app/main.py", "app/util.py", "tests/util.py", "README.md", "Makefile")]
    found = referenced_files(files, ["fix main.py and app/util.py", "also the README.md"])
    assert [f.path for f in found] == ["app/main.py", "app/util.py", "README.md"]
    # "util.py" names two files: ambiguous, so neither is taken by name alone.
    assert referenced_files(files, ["look at util.py"]) == []
    assert referenced_files(files, ["nothing here"]) == []


def test_project_files_are_listed_and_named_ones_included_within_budget():
    project = project_with({"app/main.py": "MAIN " * 10, "app/big.py": "BIG " * 100_000, "app/other.py": "OTHER"})
    prompt = build_prompt(model="gpt-5", new_message="change app/main.py and app/big.py", history=[],
                          max_completion_tokens=1000, project=project)
    context = prompt.messages[1]["content"]
    assert prompt.messages[1]["role"] == "system"
    assert all(path in context for path in ("app/main.py", "app/big.py", "app/other.py"))
    assert "MAIN MAIN" in context and "BIG BIG" not in context and "OTHER" not in context
    assert prompt.files_included == ["app/main.py"]


def test_an_empty_project_says_so():
    prompt = build_prompt(model="gpt-5", new_message="start", history=[], max_completion_tokens=10,
                          project=ProjectContext("New", []))
    assert "no files yet" in prompt.messages[1]["content"]
