"""axe-core (vendored: tests/e2e/vendor/axe-core-4.10.2, MPL-2.0) run inside a journey's page.

The source is evaluated through the DevTools protocol (not a <script> tag, which the page's CSP refuses);
`assert_accessible` fails on any serious or critical violation, naming the rule and the elements."""

from __future__ import annotations

from functools import cache
from pathlib import Path

AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core-4.10.2" / "axe.min.js"
BLOCKING = ("serious", "critical")


@cache
def axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    # Frames are the previews' own sites (generated code), not Sorya's pages: left out.
    result = page.evaluate("async () => await axe.run({exclude: [['iframe']]}, {iframes: false, resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def assert_accessible(page, where: str) -> None:
    violations = axe_violations(page)
    details = [f"{v['id']} ({v['impact']}): {v['help']} — " + ", ".join(
        str(n["target"]) for n in v["nodes"][:4]) for v in violations]
    assert not violations, f"axe on {where}:\n" + "\n".join(details)
