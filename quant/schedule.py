"""When the AI Quant's nightly job runs: a UTC time of day, and the next occurrence after a moment."""

from __future__ import annotations

import re
from dataclasses import dataclass

from titan.core.clock import NS_PER_S

DAY_S = 86_400
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True)
class TimeOfDay:
    """A UTC time of day, to the second."""

    hour: int
    minute: int
    second: int = 0

    @classmethod
    def parse(cls, text: str) -> TimeOfDay:
        """``HH:MM`` or ``HH:MM:SS`` (UTC); a ValueError names what is wrong."""
        match = _TIME.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS, UTC)")
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS, UTC)")
        return cls(hour, minute, second)

    @property
    def seconds(self) -> int:
        return self.hour * 3600 + self.minute * 60 + self.second

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}" + (f":{self.second:02d}" if self.second else "") + " UTC"

    def next_after(self, now_ns: int) -> int:
        """The first moment strictly after ``now_ns`` (epoch ns) at this time of day."""
        day_start = now_ns // (DAY_S * NS_PER_S) * DAY_S * NS_PER_S
        at = day_start + self.seconds * NS_PER_S
        return at if at > now_ns else at + DAY_S * NS_PER_S
