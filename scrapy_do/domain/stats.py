"""What a crawl's Scrapy stats say about it: errors, and samples of its progress for a chart.

Pure: the crawl's reporter and the daemon's engine both use it.
"""

#: A chart needs no more points than this; older samples are thinned out, so the whole life stays in view.
MAX_SAMPLES = 120


def error_count(stats):
    """Errors the crawl logged plus exceptions its callbacks raised (each of those is logged too, but a
    project may silence the log: they count on their own)."""
    logged = stats.get("log_count/ERROR", 0)
    raised = sum(v for k, v in stats.items() if k.startswith("spider_exceptions/") and isinstance(v, int))
    logged = logged if isinstance(logged, int) else 0
    # Scrapy logs every callback exception as an ERROR: counting both would count each twice.
    return max(logged, raised)


def progress(stats):
    """(items, requests) so far, from Scrapy's stats or the reporter's summary."""
    items = stats.get("item_scraped_count", stats.get("items", 0))
    requests = stats.get("downloader/request_count", stats.get("requests", 0))
    return (items if isinstance(items, int) else 0, requests if isinstance(requests, int) else 0)


def add_sample(samples, elapsed, stats):
    """`samples` ((elapsed s, items, requests), ...) with one more point; halved (every other one kept, the
    newest always) when over MAX_SAMPLES."""
    items, requests = progress(stats)
    point = (round(float(elapsed), 1), items, requests)
    if samples and samples[-1][0] >= point[0]:
        samples = samples[:-1]  # the same moment (the final report right after the last one)
    samples = (*samples, point)
    if len(samples) > MAX_SAMPLES:
        samples = (*samples[-2::-2][::-1], samples[-1])
    return samples
