"""Unit tests for scrapy_do.lagprobe: the opt-in reactor-lag probe, on a Clock."""

import json
import time

from twisted.internet.task import Clock

from scrapy_do import lagprobe


class Now:
    """A monotonic clock the test moves by hand (the probe reads it as time.monotonic)."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def started(tmp_path):
    clock, now = Clock(), Now()
    probe = lagprobe.LagProbe(clock, tmp_path / "lag.json", interval=0.005, threshold=0.5, clock=now,
                              cpu=lambda: 0.0)
    probe.startService()
    return probe, clock, now


def tick(clock, now, late=0.0):
    """Let the next tick run `late` seconds after it was due."""
    now.t += 0.005 + late
    clock.advance(0.005)


def test_a_late_tick_is_recorded_with_its_lag(tmp_path):
    """A tick run 12 ms after it was due is kept as a 12 ms lag; ticks on time only count."""
    probe, clock, now = started(tmp_path)
    tick(clock, now)
    tick(clock, now, late=0.012)
    tick(clock, now, late=0.0001)
    probe.stopService()
    assert [round(ms, 3) for _, ms, _ in probe.lags] == [12.0]
    assert sum(n for _, n in probe.report()["ticks"]) == 3


def test_the_figures_are_written_at_stop(tmp_path):
    """Stopping the probe writes its ticks and lags as JSON to its file and stops its timer."""
    probe, clock, now = started(tmp_path)
    tick(clock, now, late=0.003)
    probe.stopService()
    written = json.loads((tmp_path / "lag.json").read_text())
    assert written["lags"] == [[1000.008, 3.0, 0.0]]
    assert written["interval_ms"] == 5.0
    assert clock.getDelayedCalls() == []


def test_no_probe_unless_asked_for(tmp_path):
    """Without SCRAPY_DO_LAG_PROBE there is no probe; with it, one writing to the path it names."""
    assert lagprobe.from_environment(Clock(), {}) is None
    probe = lagprobe.from_environment(Clock(), {lagprobe.VARIABLE: str(tmp_path / "x.json")})
    assert probe.path == str(tmp_path / "x.json")
    assert probe.stacks_after is None
    sampling = lagprobe.from_environment(Clock(), {lagprobe.VARIABLE: "x.json", lagprobe.STACKS: "2.5"})
    assert sampling.stacks_after == 2.5


def held_reactor(seconds):
    """What the 'reactor' thread is busy with while its timer is overdue."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_overdue_timer_has_the_reactor_threads_stack_sampled(tmp_path):
    """With SCRAPY_DO_LAG_STACKS, the sampler thread records what the reactor's thread runs while a timer is
    late (here the test's own thread, holding it in held_reactor), and only then."""
    probe = lagprobe.LagProbe(Clock(), tmp_path / "lag.json", interval=0.005, clock=time.monotonic,
                              stacks_after=1.0)
    probe.startService()
    try:
        held_reactor(0.2)  # the Clock never runs the tick: from 6 ms on, the timer is overdue
    finally:
        probe.stopService()
    assert probe.stacks, "no sample taken while the timer was overdue"
    held = [frames for _, frames in probe.stacks if any("held_reactor" in frame for frame in frames)]
    assert len(held) >= len(probe.stacks) - 2  # the last may catch the test's own frame, leaving the loop
    assert json.loads((tmp_path / "lag.json").read_text())["stacks"]
