"""Where runs, schedules, projects and counters are kept: SQLite by default, memory for tests."""

from scrapy_do.store.memory import MemoryStore
from scrapy_do.store.migrations import MIGRATIONS
from scrapy_do.store.sqlite import COUNTERS, SqliteStore

__all__ = ["COUNTERS", "MIGRATIONS", "MemoryStore", "SqliteStore"]
