"""The usage chart's layout: one slot per day, stacked by model, labels that fit a phone."""

from datetime import date, timedelta

import pytest

from app.services.credits import DailyUsage
from app.web.usage_chart import (
    MAX_SERIES,
    OTHER_MODELS,
    PLOT_HEIGHT_PX,
    PLOT_TOP_PX,
    build_usage_chart,
    nice_step,
)

TODAY = date(2026, 11, 25)


@pytest.mark.parametrize(("raw", "step"), [(0.2, 1), (1, 1), (3, 5), (7.5, 10), (12, 20), (24, 25), (26, 50), (2600, 5000)])
def test_gridline_steps_are_round_numbers(raw, step):
    assert nice_step(raw) == step


def test_an_empty_month_is_an_empty_chart():
    chart = build_usage_chart([], today=TODAY)
    assert chart.is_empty and chart.segments == [] and len(chart.day_totals) == 30
    assert chart.description == "No credits spent in the last 30 days."


def test_bars_stack_per_day_and_the_tallest_fits_the_plot():
    usage = [
        DailyUsage(TODAY, "gpt-5", 300),
        DailyUsage(TODAY, "gpt-5-mini", 100),
        DailyUsage(TODAY - timedelta(days=29), "gpt-5", 50),
        DailyUsage(TODAY - timedelta(days=30), "gpt-5", 9999),  # before the window: ignored
    ]
    chart = build_usage_chart(usage, today=TODAY)
    assert chart.total == 450
    assert [series.name for series in chart.series] == ["gpt-5", "gpt-5-mini"]
    today_segments = [segment for segment in chart.segments if segment.label.startswith("Nov 25")]
    assert [segment.label for segment in today_segments] == ["Nov 25 · gpt-5: 300 credits", "Nov 25 · gpt-5-mini: 100 credits"]
    # Stacked: the second segment sits on top of the first, both within the plot area.
    bottom, top = today_segments
    assert bottom.y_px + bottom.height_px == pytest.approx(chart.baseline_px)
    assert top.y_px + top.height_px == pytest.approx(bottom.y_px)
    assert top.y_px >= PLOT_TOP_PX and chart.baseline_px == PLOT_TOP_PX + PLOT_HEIGHT_PX
    # The first day's bar is in the first slot, today's in the last.
    assert chart.segments[0].label.startswith("Oct 27") and float(chart.segments[0].x_pct.rstrip("%")) < 100 / 30
    assert float(bottom.x_pct.rstrip("%")) > 100 - 100 / 30
    # Grid labels are round and the top one is at least the busiest day.
    assert [line.label for line in chart.grid] == ["100", "200", "300", "400"]
    assert "Busiest day: Nov 25 with 400 credits" in chart.description


def test_axis_labels_end_on_today_and_stay_few_enough_for_a_phone():
    chart = build_usage_chart([DailyUsage(TODAY, "m", 1)], today=TODAY)
    assert [label.label for label in chart.axis] == ["Oct 28", "Nov 4", "Nov 11", "Nov 18", "Nov 25"]
    assert chart.axis[-1].anchor == "end" and chart.axis[-1].x_pct == "100.000%"
    assert chart.axis[0].anchor == "start"  # near the left edge: it must not be cut off
    assert {label.anchor for label in chart.axis[1:-1]} == {"middle"}


def test_a_tiny_day_still_shows_next_to_a_huge_one():
    chart = build_usage_chart([DailyUsage(TODAY, "m", 100_000), DailyUsage(TODAY - timedelta(days=1), "m", 1)], today=TODAY)
    assert min(segment.height_px for segment in chart.segments) >= 1


def test_models_beyond_the_palette_merge_into_other_models():
    usage = [DailyUsage(TODAY, f"model-{index}", 100 - index) for index in range(MAX_SERIES + 3)]
    chart = build_usage_chart(usage, today=TODAY)
    names = [series.name for series in chart.series]
    assert len(names) == MAX_SERIES and names[-1] == OTHER_MODELS
    assert chart.series[-1].total == sum(100 - index for index in range(MAX_SERIES - 1, MAX_SERIES + 3))
    assert sum(series.total for series in chart.series) == chart.total
    assert len({series.css_class for series in chart.series}) == MAX_SERIES
