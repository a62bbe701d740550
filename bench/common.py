"""What every benchmark shares: the table of figure / baseline / ratio and the closing JSON line."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="same shape, smaller: under a minute")
    return parser.parse_args()


@dataclass
class Report:
    bench: str
    figures: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def compare(self, name: str, figure: float, baseline: float, unit: str = "", ratio_name: str | None = None) -> float:
        """Record a figure beside its baseline; the ratio is figure / baseline."""
        ratio = figure / baseline if baseline else float("inf")
        self.figures[name] = round(figure, 6)
        self.baselines[name] = round(baseline, 6)
        self.ratios[ratio_name or f"{name}_ratio"] = round(ratio, 4)
        self.rows.append((name, f"{figure:,.4g} {unit}".strip(), f"{baseline:,.4g} {unit}".strip(), f"{ratio:.3f}"))
        return ratio

    def print(self) -> None:
        header = ("measure", "sorya", "baseline", "ratio")
        widths = [max(len(str(row[i])) for row in [header, *self.rows]) for i in range(4)]
        for row in [header, tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        print(json.dumps({"bench": self.bench, "figures": self.figures, "baselines": self.baselines,
                          "ratios": self.ratios}))
