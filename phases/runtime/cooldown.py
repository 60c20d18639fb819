"""The losing-streak kill condition phases share: more than ``allowed`` losing trades in a row pause
new entries for a while; the streak then starts again from zero."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass
class LossStreak:
    """Losing trades in a row and the entry pause they started (clock ns; 0: none yet)."""

    losses: int = 0
    until_ns: int = 0

    def record(self, pnl: Decimal, now_ns: int, allowed: int, pause_ns: int) -> int:
        """Count a closed trade. Returns the length of the streak when it starts a pause, else 0."""
        if pnl >= 0:
            self.losses = 0
            return 0
        self.losses += 1
        if self.losses <= allowed:
            return 0
        streak, self.losses = self.losses, 0
        self.until_ns = now_ns + pause_ns
        return streak

    def pausing(self, now_ns: int) -> bool:
        return now_ns < self.until_ns
