"""The usage filters' rules (plain values): ranges, groupings, orders; sorting rows; chart labels that fit a
phone whatever the range."""

from __future__ import annotations

from datetime import date

import pytest

from app.errors import InvalidRequest
from app.services.usage.report import MAX_RANGE_DAYS, UsageRow, sort_rows, total_row, usage_query
from app.services.usage.rollups import contribution
from app.web.usage_chart import label_step

DAY = date(2026, 12, 8)


def test_defaults_sort_names_up_and_amounts_down():
    assert usage_query(start=DAY, end=DAY).descending is True
    assert usage_query(start=DAY, end=DAY, sort="key").descending is False
    assert usage_query(start=DAY, end=DAY, sort="key", direction="desc").descending is True
    assert usage_query(start=DAY, end=DAY, member_login="  ").member_login is None


@pytest.mark.parametrize("changes, field", [
    ({"group_by": "colour"}, "group_by"), ({"sort": "delta"}, "sort"), ({"direction": "up"}, "dir"),
    ({"end": date(2026, 12, 7)}, "to"), ({"start": date(2026, 12, 8 - 7), "end": date(2027, 3, 9)}, "from"),
])
def test_bad_filters_name_their_field(changes, field):
    values = {"start": DAY, "end": DAY, **changes}
    with pytest.raises(InvalidRequest) as refused:
        usage_query(**values)
    assert field in refused.value.fields


def test_the_longest_range_is_allowed_and_one_more_day_is_not():
    start = date(2026, 9, 8)
    assert usage_query(start=start, end=date.fromordinal(start.toordinal() + MAX_RANGE_DAYS - 1)).days == MAX_RANGE_DAYS
    with pytest.raises(InvalidRequest):
        usage_query(start=start, end=date.fromordinal(start.toordinal() + MAX_RANGE_DAYS))


def test_rows_sort_by_amount_then_name_and_total():
    rows = [UsageRow(key="bob", credits=5, replies=1), UsageRow(key="Ada", credits=5, replies=2),
            UsageRow(key="cy", credits=9, replies=1)]
    assert [r.key for r in sort_rows(rows, "credits", True)] == ["cy", "Ada", "bob"]
    assert [r.key for r in sort_rows(rows, "key", False)] == ["Ada", "bob", "cy"]
    assert [r.key for r in sort_rows(rows, "replies", False)] == ["bob", "cy", "Ada"]
    total = total_row(rows)
    assert (total.key, total.credits, total.replies) == ("Total", 19, 4)


def test_a_charge_adds_one_reply_its_tokens_and_its_status():
    from datetime import UTC, datetime

    key, amounts = contribution(account_id=3, member_id=None, project_id=None, model=None,
                                created_at=datetime(2026, 12, 8, 23, 59, tzinfo=UTC), delta=-12,
                                meta={"tokens_in": 40, "tokens_out": True, "status": "stopped"})
    assert (key.day, key.member_id, key.project_id, key.model) == (DAY, 0, 0, "")
    assert amounts.as_dict() == {"tokens_in": 40, "tokens_out": 0, "credits": 12, "replies": 1,
                                 "failed_replies": 0, "stopped_replies": 1}


@pytest.mark.parametrize("days, step", [(1, 1), (5, 1), (7, 2), (14, 3), (21, 5), (30, 7), (60, 14), (92, 21)])
def test_about_five_date_labels_whatever_the_range(days, step):
    assert label_step(days) == step
    assert len(range(days - 1, -1, -step)) <= 6
