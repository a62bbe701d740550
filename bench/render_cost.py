"""The page's streaming render: CPU per delivered chunk for a long reply against a short one.

`GET /chat/messages/<id>/rendered-stream` turns each delta into an `html` event
(`app/web/reply_render.py`): finished blocks rendered once, the open tail again, an open file card grown
by its new code only. What each chunk costs the web process is `StreamRenderer.feed` plus the event's
JSON, measured here in this process (CPU time, the best of `REPEATS` runs, the render cache cleared before
each so nothing is reused between runs). The short reply (about 150 chunks of 8 characters) is the
baseline; the long one has the same kinds of block (prose, a file, an edit block) at 20 times the size,
most of it in one long file: the case where re-rendering the open block would cost more per chunk as the
reply grows. The target: `render_cpu_ratio` (long / short, per chunk) at most 1.2.

Run alone: `.venv/bin/python bench/render_cost.py [--quick]`; `bench/chat_stream.py` runs it too."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Report, parse_args  # noqa: E402

CHUNK_CHARS = 8
REPEATS = 5
TARGET_RATIO = 1.2


def sample_reply(scale: int) -> str:
    """A code-writing reply whose blocks grow with `scale`: paragraphs, one file of 25·scale lines, an edit."""
    prose = "".join(f"Step {i}: the page keeps its **state** in `localStorage`, so a reload keeps the count.\n\n"
                    for i in range(2 * scale))
    code = "".join(f"export function step{i}(count) {{ return count + {i}; }}  // keeps it pure\n"
                   for i in range(25 * scale))
    edit = ("```css path=style.css edit\n<<<<<<< SEARCH\nbody { color: #111; }\n=======\n"
            "body { color: #222; background: #fafafa; }\n>>>>>>> REPLACE\n```\n\n")
    return f"Here is the counter.\n\n{prose}```javascript path=app.js\n{code}```\n\n{edit}Reload the preview.\n"


def render_cpu_per_chunk_us(text: str, repeats: int) -> tuple[float, int]:
    """(best CPU microseconds per chunk over `repeats` runs, chunks) for streaming `text` in 8-char deltas."""
    from app.web.reply_markdown import render_reply_html
    from app.web.reply_render import StreamRenderer

    chunks = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    best = float("inf")
    for run in range(repeats):
        render_reply_html.cache_clear()
        renderer = StreamRenderer(f"code-{run}")
        started = time.process_time()
        for chunk in chunks:
            renderer.feed(chunk).to_json()
        best = min(best, time.process_time() - started)
    return 1e6 * best / len(chunks), len(chunks)


def measure(report: Report, quick: bool = False) -> float:
    """Adds the render figures to `report`; returns render_cpu_ratio (long per chunk / short per chunk)."""
    repeats = 3 if quick else REPEATS
    short_us, short_chunks = render_cpu_per_chunk_us(sample_reply(1), repeats * 4)
    long_us, long_chunks = render_cpu_per_chunk_us(sample_reply(20), repeats)
    print(f"\n== streaming render (app/web/reply_render.py), {CHUNK_CHARS}-char chunks, best of {repeats} ==")
    print(f"short reply           {short_chunks:,} chunks, {short_us:,.1f} us CPU per chunk")
    print(f"long reply            {long_chunks:,} chunks, {long_us:,.1f} us CPU per chunk "
          f"({long_us / short_us:.3f} of short; target at most {TARGET_RATIO})")
    report.compare("render_cpu_us_per_chunk", long_us, short_us, "us", ratio_name="render_cpu_ratio")
    report.figures["render_chunks_long"] = long_chunks
    report.baselines["render_chunks_short"] = short_chunks
    return long_us / short_us


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    result = Report("render_cost")
    measure(result, quick=args.quick)
    print()
    result.print()
