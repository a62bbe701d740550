"""The usage chart's geometry: credits spent per day, stacked by model, drawn as server-side SVG.

Horizontal positions are percentages of the chart's width and vertical ones are pixels, so the bars
stretch to any width while the labels keep their size: the same SVG reads at 1280 and at 390 pixels.
`partials/_usage_chart.html` draws what `build_usage_chart` computes; there is no JavaScript.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from app.services.credits import DailyUsage

CHART_DAYS = 30
# Distinct colours the stylesheet defines (.chart-series-0 ... -5); further models share "Other models".
MAX_SERIES = 6
OTHER_MODELS = "Other models"
PLOT_TOP_PX = 18
PLOT_HEIGHT_PX = 180
AXIS_LABEL_GAP_PX = 18
CHART_HEIGHT_PX = PLOT_TOP_PX + PLOT_HEIGHT_PX + AXIS_LABEL_GAP_PX + 6
GRID_LINES = 4
# Share of a day's slot the bar fills; the rest is the gap between bars.
BAR_FILL = 0.64
# Label every 7th day counted back from today: five labels fit a phone's width.
LABEL_EVERY_DAYS = 7
# Up to this many days (a chosen range), labels come every day or few days instead of weekly.
SHORT_RANGE_DAYS = 21
# A centred date label needs ~25 px each side; within this share of the width it starts at its bar instead.
EDGE_LABEL_PCT = 8.0


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str
    total: int


@dataclass(frozen=True)
class Segment:
    x_pct: str
    width_pct: str
    y_px: float
    height_px: float
    css_class: str
    label: str


@dataclass(frozen=True)
class GridLine:
    y_px: float
    label: str


@dataclass(frozen=True)
class AxisLabel:
    x_pct: str
    anchor: str
    label: str


@dataclass(frozen=True)
class DayTotal:
    day: date
    label: str
    credits: int
    by_model: list[tuple[str, int]]


@dataclass(frozen=True)
class UsageChart:
    days: int
    total: int
    series: list[Series]
    segments: list[Segment]
    grid: list[GridLine]
    axis: list[AxisLabel]
    day_totals: list[DayTotal]
    height_px: int
    baseline_px: float
    description: str
    # The span in words ("the last 30 days", "Dec 1 to Dec 7"): the title, the description, the empty state.
    period: str = ""

    @property
    def is_empty(self) -> bool:
        return self.total == 0


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def label_step(days: int) -> int:
    """Every how many days a date is labelled: about five labels fit a phone's width whatever the range."""
    if days <= SHORT_RANGE_DAYS:
        return max(1, -(-days // 5))
    return LABEL_EVERY_DAYS * max(1, -(-days // (LABEL_EVERY_DAYS * 5)))


def nice_step(raw: float) -> int:
    """The smallest of 1, 2, 2.5, 5 × 10^k credits (at least 1) not below `raw`: round gridline values."""
    if raw <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < raw:
        magnitude *= 10
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= raw and float(step).is_integer():
            return int(step)
    return 10 * magnitude


def _pct(value: float) -> str:
    return f"{value:.3f}%"


def _choose_series(usage: list[DailyUsage]) -> tuple[list[Series], dict[str, str]]:
    """The models by total spent, the biggest first; beyond MAX_SERIES - 1 they merge into one series."""
    totals: dict[str, int] = defaultdict(int)
    for item in usage:
        totals[item.model] += item.credits
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
    if len(ranked) > MAX_SERIES:
        kept, rest = ranked[: MAX_SERIES - 1], ranked[MAX_SERIES - 1 :]
        ranked = [*kept, (OTHER_MODELS, sum(total for _, total in rest))]
    series = [Series(name, f"chart-series-{index}", total) for index, (name, total) in enumerate(ranked)]
    names = {series_item.name for series_item in series}
    model_to_series = {model: (model if model in names else OTHER_MODELS) for model in totals}
    return series, model_to_series


def build_usage_chart(usage: list[DailyUsage], *, today: date, days: int = CHART_DAYS,
                      period: str | None = None) -> UsageChart:
    """Lay out `usage` (from `credits.daily_usage`) as stacked bars, one slot per day ending `today`.
    `period` names the span in words (default: the last `days` days)."""
    period = period or f"the last {days} days"
    first_day = today - timedelta(days=days - 1)
    series, model_to_series = _choose_series(usage)
    css_by_series = {item.name: item.css_class for item in series}
    order = {item.name: index for index, item in enumerate(series)}

    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in usage:
        if first_day <= item.day <= today:
            per_day[item.day][model_to_series[item.model]] += item.credits
    day_totals = [
        DayTotal(
            day=day,
            label=day_label(day),
            credits=sum(per_day[day].values()),
            by_model=sorted(per_day[day].items(), key=lambda pair: order[pair[0]]),
        )
        for day in (first_day + timedelta(days=offset) for offset in range(days))
    ]
    total = sum(day.credits for day in day_totals)
    peak = max((day.credits for day in day_totals), default=0)
    step = nice_step(peak / GRID_LINES) if peak else 1
    y_max = step * GRID_LINES
    baseline = PLOT_TOP_PX + PLOT_HEIGHT_PX
    px_per_credit = PLOT_HEIGHT_PX / y_max

    slot = 100 / days
    segments = []
    for index, day in enumerate(day_totals):
        top = baseline
        for name, credits in day.by_model:
            height = credits * px_per_credit
            top -= height
            segments.append(
                Segment(
                    x_pct=_pct(index * slot + slot * (1 - BAR_FILL) / 2),
                    width_pct=_pct(slot * BAR_FILL),
                    y_px=round(top, 2),
                    # A 1-credit day next to a 10,000-credit day still shows as a sliver.
                    height_px=round(max(height, 1.0), 2),
                    css_class=css_by_series[name],
                    label=f"{day.label} · {name}: {credits:,} credits",
                )
            )
    grid = [
        GridLine(y_px=round(baseline - step * line * px_per_credit, 2), label=f"{step * line:,}")
        for line in range(1, GRID_LINES + 1)
    ]
    axis = []
    label_every = label_step(days)
    for index in range(days - 1, -1, -label_every):
        label = day_label(day_totals[index].day)
        centre = (index + 0.5) * slot
        # Labels near an edge hang inwards from it: centred, they would be cut off on a phone.
        if index == days - 1:
            axis.append(AxisLabel(_pct(100.0), "end", label))
        elif centre < EDGE_LABEL_PCT:
            axis.append(AxisLabel(_pct(index * slot), "start", label))
        else:
            axis.append(AxisLabel(_pct(centre), "middle", label))
    axis.reverse()

    return UsageChart(
        days=days,
        total=total,
        series=series,
        segments=segments,
        grid=grid,
        axis=axis,
        day_totals=day_totals,
        height_px=CHART_HEIGHT_PX,
        baseline_px=baseline,
        description=_describe(day_totals, series, total, period),
        period=period,
    )


def _describe(day_totals: list[DayTotal], series: list[Series], total: int, period: str) -> str:
    """The chart in one paragraph, for screen readers (the SVG's <desc>)."""
    if total == 0:
        return f"No credits spent in {period}."
    busiest = max(day_totals, key=lambda day: (day.credits, day.day))
    active_days = sum(1 for day in day_totals if day.credits)
    models = "; ".join(f"{item.name}: {item.total:,}" for item in series)
    return (
        f"{total:,} credits spent over {period}, on {active_days} of them. "
        f"Busiest day: {busiest.label} with {busiest.credits:,} credits. By model: {models}."
    )
