"""Scrapy Do: run Scrapy spiders now or on a schedule, behind a REST API."""

__version__ = "1.0.0a1"
