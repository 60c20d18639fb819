"""The nightly job's time of day: parsing and the next occurrence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from titan.quant.schedule import TimeOfDay


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 10**9


def test_the_next_run_is_today_if_still_ahead_else_tomorrow() -> None:
    at = TimeOfDay.parse("02:30")
    assert at.next_after(ns("2026-12-06T01:00:00")) == ns("2026-12-06T02:30:00")
    assert at.next_after(ns("2026-12-06T02:30:00")) == ns("2026-12-07T02:30:00")  # strictly after
    assert at.next_after(ns("2026-12-31T23:59:59")) == ns("2027-01-01T02:30:00")
    assert str(TimeOfDay.parse("7:05:09")) == "07:05:09 UTC" and str(at) == "02:30 UTC"


@pytest.mark.parametrize("text", ["24:00", "2:60", "noon", "02:30:61", "", "02-30"])
def test_a_bad_time_of_day_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a time of day"):
        TimeOfDay.parse(text)
