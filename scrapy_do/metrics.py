"""The daemon's Prometheus metrics (`GET /metrics`), built with prometheus_client on a registry of its own.

What only grows is counted as it happens: runs that ended (by project, spider and outcome), their
durations, the items and requests they scraped and the bytes of logs and items they left, from the
engine's events; the lag from a schedule's due time to its run's start; API requests by endpoint and
status code, from the web layer. What is true now (jobs by status, busy slots) is read when Prometheus
scrapes. Labels stay bounded: projects, spiders, outcomes, route patterns and codes, never job ids.
"""

import os
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Histogram, exposition, generate_latest
from prometheus_client.core import GaugeMetricFamily

from scrapy_do.domain.models import JobStatus, Run
from scrapy_do.events import JobChanged

#: The classic text format (0.0.4), which every Prometheus reads; newer prometheus_client versions call their
#: default 1.0.0, which only the newest servers know. Our names need nothing newer.
CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)
#: Crawls last seconds to days.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
#: From due to started: a free slot starts a run in milliseconds, a full one keeps it waiting.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 15, 60, 300, 900, 3600)
#: Ends already counted, so an end announced twice (a write retried on a full disk) counts once.
REMEMBERED = 4096


class _Now:
    """Reads the gauges when Prometheus scrapes: nothing to keep in step with the engine."""

    def __init__(self, controller):
        self.controller = controller

    def describe(self):
        return []

    def collect(self):
        controller = self.controller
        jobs = GaugeMetricFamily("scrapy_do_jobs", "Jobs by status now (runs and schedules)", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], controller.store.count_jobs([status]))
        yield jobs
        status = controller.status()
        yield GaugeMetricFamily("scrapy_do_pending_jobs", "Runs waiting for a job slot", value=status["jobs-pending"])
        yield GaugeMetricFamily("scrapy_do_job_slots_busy", "Job slots running a crawl",
                                value=status["jobs-running"])
        yield GaugeMetricFamily("scrapy_do_job_slots", "The job-slots setting", value=status["job-slots"])
        if hasattr(controller.store, "count_deliveries"):
            kept = controller.store.count_deliveries()
            deliveries = GaugeMetricFamily("scrapy_do_webhook_deliveries", "Webhook deliveries kept, by state: "
                                           "pending (not yet acknowledged), delivered, failed (given up; the "
                                           "newest 500 ended ones are kept)", labels=["state"])
            for state in ("pending", "delivered", "failed"):
                deliveries.add_metric([state], kept.get(state, 0))
            yield deliveries
        yield GaugeMetricFamily("scrapy_do_launches_failing", "1 while launches fail and jobs wait (see "
                                "status.json's launch-problem), else 0", value=int(bool(status["launch-problem"])))


class Metrics:
    """The registry /metrics serves, fed by the controller's events and by `request_done`."""

    def __init__(self, controller):
        import prometheus_client

        # No `_created` twin of every counter and histogram: a timestamp per label set doubles the series for
        # nothing Prometheus needs (it sees the daemon restart in the counters' resets).
        getattr(prometheus_client, "disable_created_metrics", lambda: None)()
        self.controller = controller
        self.registry = registry = CollectorRegistry(auto_describe=True)
        registry.register(_Now(controller))
        self.ended = Counter("scrapy_do_runs_ended", "Runs that ended, by project, spider and outcome",
                             ["project", "spider", "outcome"], registry=registry)
        self.duration = Histogram("scrapy_do_crawl_duration_seconds", "How long crawls ran, by project",
                                  ["project"], buckets=DURATION_BUCKETS, registry=registry)
        self.items = Counter("scrapy_do_items_scraped", "Items scraped by runs that ended (Scrapy's "
                             "item_scraped_count)", ["project", "spider"], registry=registry)
        self.requests = Counter("scrapy_do_requests", "Requests sent by runs that ended (Scrapy's "
                                "downloader/request_count)", ["project", "spider"], registry=registry)
        self.written = Counter("scrapy_do_bytes_written", "Bytes of logs (out, err) and items (items) that runs "
                               "left when they ended", ["kind"], registry=registry)
        self.lag = Histogram("scrapy_do_schedule_lag_seconds", "From a schedule's due time to the start of its "
                             "run", buckets=LAG_BUCKETS, registry=registry)
        self.api = Counter("scrapy_do_api_requests", "API requests answered, by route and status code",
                           ["endpoint", "code"], registry=registry)
        self._counted = OrderedDict()
        controller.subscribe(self.on_event)

    def on_event(self, event):
        if not isinstance(event, JobChanged) or not isinstance(event.job, Run):
            return
        run = event.job
        if run.status is JobStatus.RUNNING and run.schedule_id and run.started is not None:
            if self._once(("started", run.identifier)):
                self.lag.observe(max(0.0, (run.started - run.timestamp).total_seconds()))
        elif run.status.completed and self._once(("ended", run.identifier)):
            self._ended(run)

    def _once(self, key):
        if key in self._counted:
            return False
        self._counted[key] = None
        if len(self._counted) > REMEMBERED:
            self._counted.popitem(last=False)
        return True

    def _ended(self, run):
        labels = (run.project, run.spider)
        self.ended.labels(*labels, run.status.value.lower()).inc()
        if run.started is None:
            return  # canceled while waiting, or it could not start: it crawled nothing
        if run.duration is not None:
            self.duration.labels(run.project).observe(run.duration)
        stats = run.stats or {}
        for counter, key in ((self.items, "item_scraped_count"), (self.requests, "downloader/request_count")):
            value = stats.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                counter.labels(*labels).inc(value)
        for kind, path in self.controller.files_of(run.identifier).items():
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if size:
                self.written.labels(kind).inc(size)

    def request_done(self, endpoint, code):
        self.api.labels(endpoint, str(code)).inc()

    def render(self):
        return generate_latest(self.registry)
