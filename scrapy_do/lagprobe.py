"""An opt-in reactor-lag probe (monitoring, not engine work): how late the event loop runs a timer.

Started by service.make_service only when `SCRAPY_DO_LAG_PROBE=PATH` is set (bench/lag.py sets it); it
costs nothing otherwise. Every `interval` seconds a timer asks to run again `interval` later; how much
later than that it runs is the time something else held the reactor. Garbage collections are timed
too (gc.callbacks), so a stall can be told apart from a collection.

At stop (and every `write_every` seconds if given: each write holds the reactor for a few ms with a
minute of figures, so bench/lag.py reads them at stop), it writes JSON to PATH through a rename:
  * "ticks": [[second, count]]: timers run per second of time.monotonic() (the whole system's clock on
    Linux, so another process can cut a window out of it);
  * "lags": [[time, ms, cpu ms]]: each tick later than `threshold` ms (the rest count as below it), with
    the CPU time the reactor's thread used since the previous tick: a stall with little CPU is the
    thread waiting (a syscall, or the machine running something else), one with as much is work;
  * "gc": [[time, generation, ms]]: each collection longer than `threshold` ms;
  * "stacks" (only with `SCRAPY_DO_LAG_STACKS=MS`): for each timer overdue by more than MS ms, what the
    reactor's thread was running then ([[due time, [frame, ...]]], innermost last), taken by a sampler
    thread every 0.5 ms: the stall's culprit by name instead of by guess.
"""

import gc
import json
import os
import sys
import threading
import time
import traceback

from twisted.application.service import Service

VARIABLE = "SCRAPY_DO_LAG_PROBE"
STACKS = "SCRAPY_DO_LAG_STACKS"


class LagProbe(Service):
    name = "lag-probe"

    def __init__(self, reactor, path, interval=0.005, threshold=0.5, write_every=None, clock=time.monotonic,
                 cpu=time.thread_time, stacks_after=None):
        self._reactor = reactor
        self.path = str(path)
        self.interval = interval
        self.threshold = threshold
        self.write_every = write_every
        self._clock = clock
        self._cpu = cpu
        self._cpu_at = None
        self.ticks = {}
        self.lags = []
        self.collections = []
        self._call = None
        self._due = None
        self._written = None
        self._gc_started = None
        self.stacks_after = stacks_after
        self.stacks = []
        self._sampler = None

    def startService(self):
        super().startService()
        gc.callbacks.append(self._on_gc)
        self._written = self._clock()
        self._cpu_at = self._cpu()
        self._arm(self._written)
        if self.stacks_after is not None:
            self._sampler = threading.Thread(target=self._sample, args=(threading.get_ident(),),
                                             name="lag-probe-stacks", daemon=True)
            self._sampler.start()

    def _sample(self, reactor_thread):
        """Record the reactor thread's stack while its timer is overdue: one sample per 0.5 ms."""
        while self.running:
            time.sleep(0.0005)
            due = self._due
            if due is None or (self._clock() - due) * 1000 < self.stacks_after:
                continue
            frame = sys._current_frames().get(reactor_thread)
            if frame is None:
                continue
            frames = [f"{short_path(f.filename)}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)]
            self.stacks.append((round(due, 4), frames[-12:]))

    def stopService(self):
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self.write()

    def _arm(self, now):
        self._due = now + self.interval
        self._call = self._reactor.callLater(self.interval, self._tick)

    def _tick(self):
        now, cpu = self._clock(), self._cpu()
        late = (now - self._due) * 1000
        used, self._cpu_at = (cpu - self._cpu_at) * 1000, cpu
        second = int(now)
        self.ticks[second] = self.ticks.get(second, 0) + 1
        if late > self.threshold:
            self.lags.append((round(now, 4), round(late, 3), round(used, 3)))
        if self.write_every is not None and now - self._written >= self.write_every:
            self._written = now
            self.write()
        self._arm(self._clock())

    def _on_gc(self, phase, info):
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            took = (time.perf_counter() - self._gc_started) * 1000
            self._gc_started = None
            if took > self.threshold:
                self.collections.append((round(self._clock(), 4), info.get("generation"), round(took, 3)))

    def report(self):
        return {"interval_ms": self.interval * 1000, "threshold_ms": self.threshold,
                "ticks": sorted(self.ticks.items()), "lags": self.lags, "gc": self.collections,
                "stacks": list(self.stacks)}

    def write(self):
        partial = f"{self.path}.part"
        try:
            with open(partial, "w") as f:
                json.dump(self.report(), f)
            os.replace(partial, self.path)
        except OSError:
            pass  # a probe never takes the daemon down


def short_path(filename):
    """A frame's file, short: the part after site-packages/ or the repository."""
    for marker in ("site-packages/", "/scrapy_do/", "/lib/python3"):
        at = filename.rfind(marker)
        if at >= 0:
            return filename[at + len(marker):] if marker != "/scrapy_do/" else "scrapy_do/" + filename[at + 11:]
    return filename


def from_environment(reactor, environ=os.environ):
    """The probe the environment asks for, or None."""
    path = environ.get(VARIABLE)
    if not path:
        return None
    stacks = environ.get(STACKS)
    return LagProbe(reactor, path, stacks_after=float(stacks) if stacks else None)
