"""Deadline pacing with a fake clock: schedule, catch-up, chunking and achieved rate."""

from __future__ import annotations

import pytest

from producers.synthetic.pacing import Pacer


class FakeTime:
    """A clock that only moves when someone sleeps or work is charged to it."""

    def __init__(self, t: float = 50.0, oversleep_s: float = 0.0) -> None:
        self.t = t
        self.oversleep_s = oversleep_s  # every sleep lasts this much longer than asked
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s + self.oversleep_s


def drive(pacer: Pacer, ft: FakeTime, n: int, cost_s: float) -> list[tuple[float, int]]:
    """Send n events the way the runner does; each send costs cost_s per event. Returns (time, sent)."""
    sent, log = 0, []
    pacer.start()
    while sent < n:
        due = min(n, pacer.due()) - sent
        if due <= 0:
            pacer.wait_next(sent)
            continue
        ft.t += due * cost_s
        sent += due
        log.append((ft.t, sent))
    pacer.wait_for(n)
    return log


def test_event_n_is_due_at_start_plus_n_over_rate():
    ft = FakeTime()
    pacer = Pacer(100.0, ft.clock, ft.sleep)
    pacer.start()
    assert pacer.deadline(0) == 50.0 and pacer.deadline(250) == pytest.approx(52.5)
    assert pacer.due() == 1
    ft.t += 0.095
    assert pacer.due() == 10
    ft.t += 0.005
    assert pacer.due() == 11


def test_wait_sleeps_until_the_deadline_and_not_when_already_due():
    ft = FakeTime()
    pacer = Pacer(10.0, ft.clock, ft.sleep)
    pacer.start()
    pacer.wait_for(3)
    assert ft.t == pytest.approx(50.3) and ft.sleeps == [pytest.approx(0.3)]
    pacer.wait_for(2)
    assert len(ft.sleeps) == 1


def test_a_late_producer_catches_up_by_sending_everything_due():
    ft = FakeTime()
    pacer = Pacer(1000.0, ft.clock, ft.sleep)
    pacer.start()
    ft.t += 2.0  # stalled for two seconds (GC, a slow block)
    assert pacer.due() == 2001


@pytest.mark.parametrize("rate", [1_000.0, 10_000.0, 50_000.0])
def test_achieved_rate_matches_the_target_despite_oversleeping(rate):
    ft = FakeTime(oversleep_s=80e-6)  # a real sleep overshoots by tens of microseconds
    pacer = Pacer(rate, ft.clock, ft.sleep)
    n = int(rate * 3)
    log = drive(pacer, ft, n, cost_s=2e-6)
    assert n / (ft.t - 50.0) == pytest.approx(rate, rel=0.01)
    # never ahead of the schedule: by time t at most due(t) events were sent
    assert all(sent <= int((t - 50.0) * rate) + pacer.chunk + 1 for t, sent in log)


def test_sleeping_one_interval_per_event_would_undershoot():
    """The reason for deadlines: the same oversleep ruins naive pacing."""
    ft = FakeTime(oversleep_s=80e-6)
    rate, n = 5_000.0, 5_000
    for _ in range(n):
        ft.sleep(1 / rate)
    assert n / (ft.t - 50.0) < 0.8 * rate


def test_chunks_bound_the_number_of_wakeups():
    ft = FakeTime()
    pacer = Pacer(50_000.0, ft.clock, ft.sleep, min_chunk_s=0.001)
    assert pacer.chunk == 50
    drive(pacer, ft, 50_000, cost_s=0.0)
    assert len(ft.sleeps) <= 1_001


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be > 0"):
        Pacer(0.0)
