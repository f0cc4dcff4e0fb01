"""Where jobs, schedules, projects and counters are kept."""

from scrapy_do.store.sqlite import *  # noqa: F401,F403
from scrapy_do.store.sqlite import COUNTERS, MIGRATIONS, MemoryStore, SqliteStore  # noqa: F401
