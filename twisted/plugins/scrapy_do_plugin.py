"""Makes `twistd scrapy-do` available; the real code is in scrapy_do.plugin."""

from scrapy_do.plugin import ServiceMaker

scrapy_do = ServiceMaker()
