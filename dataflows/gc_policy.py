"""The flow process and Python's cyclic garbage collector: long-lived state leaves its generations.

CPython frees almost everything by reference counting; the cyclic collector only looks
for reference cycles, and it looks at every tracked object that is young enough. The
flow's state is millions of long-lived containers (entities, tile lists, the dedup map)
that contain no cycles (a test runs the stages over a fault-laden log and finds nothing
to collect), yet with the default thresholds the collector rescans them so often that
it adds about half to the partition stage's time per event (2026-12-02). Hence:

* a young generation of 500k objects (Python's default is 700), so that young
  collections are rare;
* every second, :func:`gc.freeze` moves whatever survived into the permanent generation
  (an O(1) list splice), so no collection rescans grown state; without it, an old
  collection scans all the state built so far, and a live flow pauses while it does.

The cost: a reference cycle that was alive when frozen is never reclaimed. The flow's own
objects form none; cycles made elsewhere (e.g. by a library) leak instead of waiting for
the collector. Unfrozen and collected at the end of a run, what is left is a fixed amount
of cyclic garbage from start-up and teardown, whatever the run's length, and in a live run
the flow's state itself (entities, tile lists, stage states, no frames or exceptions),
released at the end through the dataflow graph.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

GC_THRESHOLDS = (500_000, 50, 100)  # the flow process's cyclic-GC thresholds
FREEZE_INTERVAL_S = 1.0  # seconds between gc.freeze() calls


def configure() -> None:
    """Collect start-up garbage, set the thresholds, freeze what the start-up built (imports, model)."""
    gc.collect()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


class SurvivorFreezer:
    """Calls :func:`gc.freeze` at most once per ``interval_s`` (``tick`` is called per input batch)."""

    def __init__(self, interval_s: float = FREEZE_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.interval_s, self.clock = interval_s, clock
        self.last = clock()

    def tick(self) -> bool:
        """Freeze the survivors if the interval has passed; True when it did."""
        now = self.clock()
        if now - self.last < self.interval_s:
            return False
        gc.freeze()
        self.last = now
        return True
