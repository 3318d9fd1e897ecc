"""Build batches in a second process, so generation and writing use both cores.

Generation and serialisation cost ~2 µs per event. A big file backfill runs faster with
the batches built on the second core (5-10%, 2026-12-01); a Kafka backfill does not,
because librdkafka's threads need that core (see ``runner.use_worker``). The worker gets
the parent's prepared world and simulator (pickled, ~3 MB), runs
:func:`~producers.synthetic.batches.iter_batches` and ships each batch through a bounded
queue; the output is the same, byte for byte, as building the batches in-process.

The worker is *spawned*, not forked: the parent already runs librdkafka's threads, and a
forked child of a threaded process inherits their locks in whatever state they were (with
the Kafka sink at full speed, forked workers crashed with SIGSEGV, 2026-12-01). As with
every start method but fork, a script that calls :func:`~producers.synthetic.runner.run`
with the worker on must guard its entry point with ``if __name__ == "__main__":`` (the CLI
does).

The worker ignores Ctrl-C; the parent stops it when it is done or interrupted.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from producers.synthetic.batches import Batch, iter_batches
from producers.synthetic.config import ProducerConfig
from producers.synthetic.prepare import Setup

QUEUE_DEPTH = 2  # batches the worker may run ahead (memory: ~30 MB each)


@dataclass(frozen=True)
class WorkerFailed:
    """What the worker sends instead of a batch when it raised."""

    message: str


def _work(cfg: ProducerConfig, setup: Setup, block_events: int, out: mp.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the default, whatever the parent installed
    try:
        for batch in iter_batches(cfg, setup, block_events):
            out.put(batch)
        out.put(None)
    except BaseException as e:  # noqa: BLE001  (reported to the parent, which raises)
        out.put(WorkerFailed(f"{type(e).__name__}: {e}"))


def worker_batches(
    cfg: ProducerConfig, setup: Setup, block_events: int, stop: Callable[[], bool] = lambda: False
) -> Iterator[Batch]:
    """Yield the batches a worker process builds from ``setup`` (sent to it, not rebuilt).

    The parent must not consume ``setup.simulator`` itself: the worker continues from the
    state it had when the worker started. ``stop()`` is polled while waiting for the next batch.
    """
    ctx = mp.get_context("spawn")  # not fork: see the module docstring
    out: mp.Queue = ctx.Queue(maxsize=QUEUE_DEPTH)
    process = ctx.Process(target=_work, args=(cfg, setup, block_events, out), name="synthetic-generator", daemon=True)
    process.start()
    try:
        while True:
            try:
                item = out.get(timeout=0.2)
            except queue_mod.Empty:
                if stop():
                    return
                if not process.is_alive():
                    msg = f"the generator process exited with code {process.exitcode} without finishing"
                    raise RuntimeError(msg) from None
                continue
            if item is None:
                return
            if isinstance(item, WorkerFailed):
                msg = f"the generator process failed: {item.message}"
                raise RuntimeError(msg)  # noqa: TRY004 (a failure the worker reported, not a wrong argument type)
            yield item
    finally:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
        out.close()
