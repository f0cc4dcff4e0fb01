"""Pages of `list-jobs` kept between writes that cannot change them (pure; no I/O).

A dashboard or a monitor asks for the same page of finished jobs over and over while crawls run; the
SQL for ~100 jobs costs the reactor ~0.8 ms each time, most of a request's cost (bench/lag.py). A page
is reused until a write could have changed it. The store says what each write touched: the statuses of
the jobs it wrote, or None when it cannot say (a purge, a migration). A written job came from an
ACTIVE status or was already in the one it has (TRANSITIONS: completed statuses are final), so a write
touches its jobs' statuses and every ACTIVE one; a page of finished jobs outlives stats reports and new
runs, and is dropped the moment a job finishes.
"""

from scrapy_do.domain.models import ACTIVE, JobStatus

ALL = frozenset(JobStatus)


class PageCache:
    """At most `size` pages; a page is keyed by its query and valid while its statuses' versions hold."""

    def __init__(self, size=32):
        self.size = size
        self._versions = dict.fromkeys(ALL, 0)
        self._pages = {}
        self.hits = self.misses = 0
        #: Counts every write: what the store's `generation` is.
        self.writes = 0

    def _stamp(self, statuses):
        return tuple(self._versions[s] for s in sorted(statuses or ALL, key=lambda s: s.value))

    def get(self, key, statuses):
        """The page stored for `key`, if no write since could have changed it; else None."""
        entry = self._pages.get(key)
        if entry is not None and entry[0] == self._stamp(statuses):
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key, statuses, page):
        if len(self._pages) >= self.size and key not in self._pages:
            self._pages.clear()  # a handful of queries in practice; no LRU bookkeeping on the hot path
        self._pages[key] = (self._stamp(statuses), page)

    def touched(self, statuses=None):
        """A write changed jobs with these statuses (None: anything)."""
        self.writes += 1
        for status in ALL if statuses is None else set(statuses) | ACTIVE:
            self._versions[status] += 1
