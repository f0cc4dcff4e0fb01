"""Unit tests for scrapy_do.lagprobe: the opt-in reactor-lag probe, on a Clock."""

import json

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
