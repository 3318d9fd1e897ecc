"""Live pacing against absolute deadlines: event n is due at ``start + n / rate``.

Sleeping ``1 / rate`` between sends undershoots (905/s for a 1,000/s target, 2026-11-22) because
every sleep overshoots and the errors add up; deadlines do not drift, and a producer that
fell behind catches up by sending everything already due at once. To keep the number of
wake-ups bounded at high rates, the pacer waits until at least ``chunk`` events are due.

The clock and the sleep are injected so tests can drive time by hand:

>>> now = [100.0]
>>> pacer = Pacer(rate=10.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
>>> _ = pacer.start(); pacer.due()
1
>>> pacer.wait_for(5); now[0], pacer.due()
(100.5, 6)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds, monotonic
Sleep = Callable[[float], None]  # seconds


class Pacer:
    """Tells how many events are due and sleeps until the next ones are."""

    def __init__(
        self, rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep, min_chunk_s: float = 0.001
    ) -> None:
        if not rate > 0:
            msg = f"Pacer rate must be > 0 events per second, got {rate!r}"
            raise ValueError(msg)
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self.chunk = max(1, math.ceil(rate * min_chunk_s))  # events per wake-up, at least
        self.t0 = 0.0

    def start(self) -> float:
        """Start the schedule now; return the start time."""
        self.t0 = self.clock()
        return self.t0

    def deadline(self, n: int) -> float:
        """When event ``n`` (0-based) is due, in clock seconds."""
        return self.t0 + n / self.rate

    def due(self) -> int:
        """How many events (from event 0) are due by now."""
        return max(0, math.floor((self.clock() - self.t0) * self.rate + 1e-9) + 1)

    def wait_for(self, n: int) -> None:
        """Sleep until event ``n`` is due (no-op when it already is)."""
        delay = self.deadline(n) - self.clock()
        if delay > 0:
            self.sleep(delay)

    def wait_next(self, sent: int) -> None:
        """Having sent ``sent`` events, sleep until the next chunk of them is due."""
        self.wait_for(sent + self.chunk - 1)
