"""Ctrl-C and SIGTERM for the features flow: an orderly stop for a live flow, an abort for a finite one.

Bytewax alone stops abruptly on SIGINT (no final snapshot) and dies at once on SIGTERM.
Here the first signal of a live flow sets :data:`STOP`: the Kafka source ends its
partitions in order, Bytewax takes a final snapshot (with recovery), and open windows stay
open for the next run. A second signal aborts at once. A backfill is aborted by the first
signal (its examples file is only written when the input is complete).
"""

from __future__ import annotations

import signal
import sys
import threading

#: Set by the first SIGINT/SIGTERM of a live flow; the Kafka source watches it.
STOP = threading.Event()


def install_stop_handlers(live: bool) -> None:
    """Map SIGINT and SIGTERM as described above (``live``: an orderly stop first)."""

    def orderly(signum: int, frame: object) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()
        print(f"features: {signal.Signals(signum).name}: stopping after the current batch "
              "(again to abort)", file=sys.stderr, flush=True)

    handler = orderly if live else signal.default_int_handler
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
