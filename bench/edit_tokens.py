"""What edits and elided history save: a scripted 20-turn session, replayed twice against the OpenAI emulator.

A 30-file project; each turn the person names 1, 2 or 3 files in turn (so turns 2 and 20 are alike and
their prompts compare) and asks for a small change, and the scripted
reply changes a few lines in each. The session is replayed twice through Sorya's own prompt builder
(`app.services.chat.prompt.build_prompt`), the reply parser and the edit applier, with the emulator
(its own process, `python -m sandbox.emulators`) answering and reporting usage:

(a) the baseline, today's behaviour before issue 18 (`ChatSettings.edit_replies=False`, no history
    budget): the model rewrites whole files and every send carries the full history, file bodies included;
(b) Sorya now (`edit_replies=True`, the default history budget): the emulator answers the same change as
    edit blocks (it does when the prompt carries the file and asks for edits), and earlier replies are
    sent with their file bodies elided.

Reported per turn and in total: prompt tokens, completion tokens (both as the emulator reports them) and
credits (`credits.reply_cost` at the default price). Targets: total credits (b) <= 0.3 x (a); prompt tokens
at turn 20 <= 1.5 x turn 2 in (b); after every turn, (b)'s files equal (a)'s file for file.

    .venv/bin/python bench/edit_tokens.py [--quick]     # --quick: one session; full: three seeds
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report, parse_args  # noqa: E402

FILES = 30
TURNS = 20
MODEL = "gpt-5"
MAX_COMPLETION_TOKENS = 8000
WORDS = ("total", "count", "price", "items", "user", "order", "cart", "limit", "score", "name", "value", "page")


def start_emulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    ready = workdir / "emulators.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulators", "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the emulators did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["openai"]


def make_file(rng: random.Random, index: int) -> str:
    lines = [f'"""Module {index} of the shop."""', "", "from __future__ import annotations", ""]
    for n in range(rng.randint(6, 12)):
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        lines += [f"def {a}_{b}_{n}({a}: int, {b}: int) -> int:", f"    result = {a} * {rng.randint(2, 99)} + {b}",
                  "    return result", ""]
    return "\n".join(lines)


def change_file(rng: random.Random, text: str, turn: int) -> str:
    """A few lines changed, as a small request would."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        candidates = [i for i, line in enumerate(lines) if line.startswith("    result = ")]
        at = rng.choice(candidates)
        lines[at] = lines[at].rsplit(" + ", 1)[0] + f" + {rng.choice(WORDS)}  # turn {turn}"
    return "\n".join(lines)


@dataclass
class Script:
    """The session: the project's first files, then per turn the message and the files' new contents."""

    files: dict[str, str]
    turns: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def make_script(seed: int) -> Script:
    rng = random.Random(seed)
    paths = [f"shop/{('cart', 'orders', 'users')[i % 3]}/module_{i:02}.py" for i in range(FILES)]
    script = Script({path: make_file(rng, i) for i, path in enumerate(paths)})
    current = dict(script.files)
    for turn in range(1, TURNS + 1):
        chosen = rng.sample(paths, (turn - 1) % 3 + 1)  # 1, 2, 3, 1, ...: turns 2 and 20 both change 2
        changed = {path: change_file(rng, current[path], turn) for path in chosen}
        current.update(changed)
        message = f"Turn {turn}: in {', '.join(chosen)}, add the {rng.choice(WORDS)} to each result."
        script.turns.append((message, changed))
    return script


@dataclass
class Turn:
    prompt_tokens: int
    completion_tokens: int
    credits: int
    files: dict[str, str]


def replay(script: Script, openai_url: str, *, edits: bool) -> list[Turn]:
    import openai
    import requests

    from app.services import credits
    from app.services.chat.prompt import HistoryMessage, ProjectContext, ProjectFile, build_prompt
    from app.services.chat.settings import ChatSettings
    from app.services.snapshots.edits import apply_reply_blocks
    from app.services.snapshots.reply_files import parse_reply_files
    from config import Config

    config = Config.from_env(env={})
    price = credits.price_for_model(MODEL, config.MODEL_PRICES, config.CREDITS_PER_1K_TOKENS)
    budget = ChatSettings.history_budget_tokens if edits else None
    client = openai.OpenAI(base_url=openai_url, api_key="sk-bench")
    files = dict(script.files)
    history: list[HistoryMessage] = []
    turns = []
    for number, (message, changed) in enumerate(script.turns, start=1):
        reply = "Done: the results now add it.\n\n" + "".join(
            f"```python path={path}\n{content}```\n" for path, content in changed.items())
        requests.post(openai_url.rsplit("/v1", 1)[0] + "/_emulator/script",
                      json={"text": reply, "as_edits": edits}, timeout=10).raise_for_status()
        prompt = build_prompt(
            model=MODEL, new_message=message, history=history, max_completion_tokens=MAX_COMPLETION_TOKENS,
            project=ProjectContext("Shop", [ProjectFile(p, c) for p, c in sorted(files.items())]),
            edits=edits, history_budget_tokens=budget)
        answer = client.chat.completions.create(model=MODEL, messages=prompt.messages,
                                                max_completion_tokens=MAX_COMPLETION_TOKENS)
        text = answer.choices[0].message.content or ""
        parsed = parse_reply_files(text)
        applied = apply_reply_blocks({b.path: files[b.path] for b in parsed.blocks if b.path in files}, parsed.blocks)
        if not applied.ok:
            raise SystemExit(f"turn {number}: the edits did not apply: {applied.errors}")
        files.update(applied.writes)
        usage = answer.usage
        turns.append(Turn(usage.prompt_tokens, usage.completion_tokens,
                          credits.reply_cost(usage.prompt_tokens, usage.completion_tokens, price), dict(files)))
        history += [HistoryMessage("user", message), HistoryMessage("assistant", text, number)]
    return turns


def main() -> None:
    args = parse_args("Tokens and credits of a 20-turn session: edits + elided history beside whole files.")
    seeds = [18] if args.quick else [18, 19, 20]
    report = Report("edit_tokens")
    with tempfile.TemporaryDirectory(prefix="sorya-bench-") as workdir:
        process, openai_url = start_emulator(Path(workdir))
        try:
            runs = [(replay(make_script(s), openai_url, edits=False), replay(make_script(s), openai_url, edits=True))
                    for s in seeds]
        finally:
            process.terminate()
            process.wait(timeout=10)

    print(f"{TURNS}-turn session on a {FILES}-file project, 1-3 files changed per turn; seeds {seeds}.")
    print("turn  (a) prompt  (a) completion  (a) credits   (b) prompt  (b) completion  (b) credits")
    baseline, edited = runs[0]
    for index, (a, b) in enumerate(zip(baseline, edited, strict=True), start=1):
        print(f"{index:>4}  {a.prompt_tokens:>10,}  {a.completion_tokens:>14,}  {a.credits:>11,}   "
              f"{b.prompt_tokens:>10,}  {b.completion_tokens:>14,}  {b.credits:>11,}")
    totals = {key: [sum(getattr(t, key) for run in runs for t in run[i]) for i in (0, 1)]
              for key in ("prompt_tokens", "completion_tokens", "credits")}
    print(f"total {totals['prompt_tokens'][0]:>10,}  {totals['completion_tokens'][0]:>14,}  "
          f"{totals['credits'][0]:>11,}   {totals['prompt_tokens'][1]:>10,}  {totals['completion_tokens'][1]:>14,}  "
          f"{totals['credits'][1]:>11,}")
    same = all(a.files == b.files for base, edit in runs for a, b in zip(base, edit, strict=True))
    growth = max(edit[-1].prompt_tokens / edit[1].prompt_tokens for _, edit in runs)
    print(f"versions equal file for file after every turn: {same}")
    report.compare("credits_total", totals["credits"][1], totals["credits"][0], "credits", "credits_ratio")
    report.compare("prompt_tokens_total", totals["prompt_tokens"][1], totals["prompt_tokens"][0], "tokens")
    report.compare("completion_tokens_total", totals["completion_tokens"][1], totals["completion_tokens"][0], "tokens")
    report.compare("prompt_tokens_turn_20", edited[-1].prompt_tokens, edited[1].prompt_tokens, "tokens",
                   "prompt_growth_turn20_over_turn2")
    report.ratios["prompt_growth_turn20_over_turn2"] = round(growth, 4)  # the worst seed
    report.figures["versions_equal"] = 1.0 if same else 0.0
    report.print()
    failed = [name for name, ok in (("credits_ratio <= 0.3", report.ratios["credits_ratio"] <= 0.3),
                                    ("prompt growth <= 1.5", growth <= 1.5), ("versions equal", same)) if not ok]
    if failed:
        print("targets missed: " + ", ".join(failed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
