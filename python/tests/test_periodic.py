"""periodic(): abs-sleep's periodic activations, drift-free, with the interpreter's lock released
while sleeping."""

import itertools
import math
import signal
import threading
import time

import pytest

import lllqos


def test_deadlines_are_on_the_monotonic_clock_a_period_apart_over_200_periods():
    period = 0.002
    deadlines = []
    late = []
    for t in itertools.islice(lllqos.periodic(period), 200):
        now = time.monotonic()
        deadlines.append(t)
        late.append(now - t)
    # Never early, and each deadline exactly where the first one and the period put it: no drift.
    assert min(late) >= 0
    for n, t in enumerate(deadlines):
        assert math.isclose(t - deadlines[0], n * period, abs_tol=1e-9), (n, t - deadlines[0])
    # The sleeps are to the deadlines (not 200 periods of sleep plus work).
    assert deadlines[-1] - deadlines[0] == pytest.approx(199 * period, abs=1e-9)


def test_the_first_deadline_is_a_period_away_or_aligned():
    now = time.monotonic()
    first = next(lllqos.periodic(0.05))
    assert 0.05 <= first - now < 0.06
    start = time.monotonic()
    aligned = next(lllqos.periodic(0.01, align_secs=0.1))
    # As abs-sleep: the first multiple of align_secs at or after now + period.
    assert round(aligned * 10) == pytest.approx(aligned * 10, abs=1e-6)
    assert start + 0.01 <= aligned + 1e-6 < start + 0.11 + 1e-6
    # A zero alignment aligns nothing, as abs-sleep.
    start = time.monotonic()
    assert 0.01 - 1e-6 <= next(lllqos.periodic(0.01, align_secs=0)) - start < 0.02


def test_a_stall_skips_the_missed_deadlines_keeping_the_phase():
    activations = lllqos.periodic(0.01)
    first = next(activations)
    time.sleep(0.055)
    after = next(activations)
    # Not the five missed ones one after the other: the last one due, in phase, at once.
    assert math.isclose(after - first, 0.05, abs_tol=1e-9), after - first
    assert math.isclose(next(activations) - after, 0.01, abs_tol=1e-9)


def test_another_thread_runs_while_periodic_sleeps():
    counted = 0
    done = threading.Event()

    def count():
        nonlocal counted
        while not done.is_set():
            counted += 1

    worker = threading.Thread(target=count)
    worker.start()
    before = []
    for _ in itertools.islice(lllqos.periodic(0.01), 20):
        before.append(counted)
    done.set()
    worker.join()
    # It counted between every two activations: the sleeps held no lock it needed.
    assert all(b > a for a, b in zip(before, before[1:])), before


def test_a_signal_handler_runs_during_the_sleep_and_its_exception_ends_it():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            next(lllqos.periodic(5))
        assert time.monotonic() - started < 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_handler_that_returns_lets_the_sleep_go_on_to_its_deadline():
    calls = []
    previous = signal.signal(signal.SIGALRM, lambda s, f: calls.append(s))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        now = time.monotonic()
        t = next(lllqos.periodic(0.1))
        assert calls == [signal.SIGALRM]
        assert time.monotonic() >= t >= now + 0.1 - 1e-6
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("period", [0, -1, float("nan"), float("inf"), 1e-12])
def test_a_period_that_is_not_positive_is_a_value_error(period):
    with pytest.raises(ValueError, match="period must be a positive number of seconds"):
        lllqos.periodic(period)


def test_a_period_that_is_not_a_number_is_a_type_error():
    with pytest.raises(TypeError, match="period must be a number of seconds"):
        lllqos.periodic("0.5")
    with pytest.raises(ValueError, match="align_secs"):
        lllqos.periodic(0.5, align_secs=-1)
