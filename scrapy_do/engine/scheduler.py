"""Fires periodic jobs at their due times with one timer for all of them.

The next due time of each schedule comes from the pure `Spec.next_fire`;
this class only keeps a heap of due times and arms a single `callLater` for
the earliest, so 10,000 idle schedules cost one timer and no CPU.

Due times are epoch seconds (absolute instants). Each one is computed
strictly after both the clock and the previous due time, so a schedule never
fires twice for one due time: not when a calendar rule meets a DST change,
and not when the clock jumps backwards.
"""

import heapq
import itertools

from twisted.logger import Logger

from scrapy_do.domain import zones

log = Logger(namespace="scrapy_do.engine.scheduler")


class SpecScheduler:
    def __init__(self, clock, fire, rng=None, zone=zones.UTC):
        """`clock` is an IReactorTime; `fire(key)` is called at each due time; calendar rules use `zone`."""
        self._clock = clock
        self.zone = zone
        self._fire = fire
        self._rng = rng
        self._entries = {}  # key -> (spec, due seconds, zone)
        self._heap = []
        self._order = itertools.count()
        self._timer = None
        self.running = False

    def __len__(self):
        return len(self._entries)

    def _now(self):
        return self._clock.seconds()

    def _next_due(self, spec, after, zone):
        due = spec.next_fire(zones.instant(after), zone, self._rng).timestamp()
        if due <= after:  # next_fire promises better; never let a bug spin the reactor
            log.error("spec {spec!r} gave a due time not after {after}; using one second later",
                      spec=spec.text, after=after)
            due = after + 1.0
        return due

    def add(self, key, spec, after=None, zone=None):
        """Arm `key`; its first due time comes after `after` (default now) and after the clock.
        Its calendar rules use `zone` (default: the scheduler's)."""
        now = self._now()
        zone = self.zone if zone is None else zone
        due = self._next_due(spec, now if after is None else max(now, after), zone)
        self._entries[key] = (spec, due, zone)
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._arm()
        return due

    def remove(self, key):
        if self._entries.pop(key, None) is not None:
            self._arm()

    def next_due(self, key):
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def start(self):
        self.running = True
        self._arm()

    def stop(self):
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _prune(self):
        while self._heap:
            due, _, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == due:
                return
            heapq.heappop(self._heap)

    def _arm(self):
        if not self.running:
            return
        self._prune()
        if not self._heap:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            return
        delay = max(0.0, self._heap[0][0] - self._now())
        if self._timer is not None and self._timer.active():
            self._timer.reset(delay)
        else:
            self._timer = self._clock.callLater(delay, self._run)

    def _run(self):
        self._timer = None
        now = self._now()
        while self._heap:
            self._prune()
            if not self._heap or self._heap[0][0] > now:
                break
            fired, _, key = heapq.heappop(self._heap)
            spec, _, zone = self._entries[key]
            due = self._next_due(spec, max(now, fired), zone)
            self._entries[key] = (spec, due, zone)
            heapq.heappush(self._heap, (due, next(self._order), key))
            try:
                self._fire(key)
            except Exception:
                log.failure("firing schedule {key} failed", key=key)
        self._arm()
