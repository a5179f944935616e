"""The mail budget: how many emails every sender together may send per window, and how much of
it participant mail (welcome, waitlist, reminder, thank-you...) may take.

Orders to the backends and credentials are *urgent*: they may use the whole budget. Everything
else is *bulk* and stops at ``share`` of it, so a burst of welcome emails never takes the part
that orders and credentials need. A rate under a few emails per second (the SES sandbox's 1/s)
is counted over a window of several seconds, so both kinds always keep at least one email.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MIN_BUDGET = 3  # a window holds at least this many emails: one urgent, and bulk ones


@dataclass(frozen=True)
class Budget:
    window: int  # seconds
    urgent: int  # emails per window, urgent mail counted in
    bulk: int  # of which bulk mail may take at most this many

    def limit(self, urgent: bool) -> int:
        return self.urgent if urgent else self.bulk

    def start(self, now: float) -> int:
        """The window that wall time ``now`` falls in, as its first second."""
        return int(now) // self.window * self.window

    def next_start(self, now: float) -> int:
        return self.start(now) + self.window


def budget(rate: float, share: float) -> Budget:
    """The budget for ``rate`` emails per second, bulk mail taking at most ``share`` of it."""
    if rate <= 0 or not 0 <= share <= 1:
        raise ValueError(f"a send rate must be positive and a share within 0..1 (got {rate}, {share})")
    window = max(1, math.ceil(MIN_BUDGET / rate))
    total = max(1, math.floor(rate * window))
    bulk = math.floor(total * share)
    if 0 < share < 1 and total >= 2:
        bulk = min(max(1, bulk), total - 1)  # some of each kind, whatever the rounding
    return Budget(window, total, bulk)
