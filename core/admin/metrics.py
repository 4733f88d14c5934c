"""Prometheus metrics of one process, fed as an Observer (core.admin.observe).

The CollectorRegistry is injected by the composition root: one per process (tests run several in one
interpreter), never prometheus_client's global default. Names are prefixed `teambridge_`.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.admin.observe import NullObserver, TurnReport

# Seconds. A first word after ~1 s feels quick; a long tool-using answer can take minutes.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0, 300.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics(NullObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        by_answer = ("platform", "assistant")
        self.answers = Counter("teambridge_answers", "Messages answered, by how the answer ended",
                               (*by_answer, "outcome"), registry=registry)
        self.first_text = Histogram("teambridge_first_text_seconds",
                                    "From the event reaching teambridge to the first text of the answer",
                                    by_answer, buckets=LATENCY_BUCKETS, registry=registry)
        self.done = Histogram("teambridge_answer_seconds", "From the event reaching teambridge to the end of the answer",
                              by_answer, buckets=LATENCY_BUCKETS, registry=registry)
        self.tokens = Counter("teambridge_tokens", "Model tokens used", (*by_answer, "kind"), registry=registry)
        self.tool_calls = Counter("teambridge_tool_calls", "Tool calls the model made", by_answer, registry=registry)
        self.in_flight = Gauge("teambridge_answers_in_flight", "Answers being generated right now", by_answer,
                               registry=registry)
        self.backend_errors = Counter("teambridge_backend_errors", "Model backend failures shown to a user",
                                      ("backend",), registry=registry)
        self.rate_limited_total = Counter("teambridge_platform_rate_limited",
                                          "HTTP 429 answers from a platform's API", ("platform",), registry=registry)
        self.retries = Counter("teambridge_platform_retries", "Platform API requests retried", ("platform",),
                               registry=registry)
        self.budget_waits = Counter("teambridge_rate_budget_waits",
                                    "Calls that waited for the platform's rate budget", ("platform",),
                                    registry=registry)
        self.budget_wait_seconds = Counter("teambridge_rate_budget_wait_seconds",
                                           "Seconds spent waiting for the platform's rate budget", ("platform",),
                                           registry=registry)
        self.ratings = Counter("teambridge_feedback", "Ratings people gave answers (a changed rating counts again)",
                               (*by_answer, "rating"), registry=registry)
        self.retention_sweeps = Counter("teambridge_retention_sweeps",
                                        "Runs of the retention sweep (retention.conversations_days), by outcome",
                                        ("outcome",), registry=registry)
        self.retention_deleted = Counter("teambridge_retention_deleted_conversations",
                                         "Conversations the retention sweep deleted", registry=registry)
        # The labelled series, looked up once: prometheus_client's labels() validates and locks on every call,
        # and every answer updates several of them.
        self._series: dict[tuple, object] = {}
        self.connected = Gauge("teambridge_platform_connected", "1 while the platform's connection is up",
                               ("platform",), registry=registry)

    def _labelled(self, metric, *labels: str):
        key = (metric, labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = metric.labels(*labels)
        return series

    def turn_started(self, platform: str, assistant: str) -> None:
        self._labelled(self.in_flight, platform, assistant).inc()

    def turn_finished(self, report: TurnReport) -> None:
        labels = (report.platform, report.assistant)
        self._labelled(self.answers, *labels, report.outcome).inc()
        if not report.started:  # refused before it began: no latency, never in flight
            return
        self._labelled(self.in_flight, *labels).dec()
        self._labelled(self.done, *labels).observe(report.total_seconds)
        if report.first_text_seconds is not None:
            self._labelled(self.first_text, *labels).observe(report.first_text_seconds)
        u = report.usage
        for kind, n in (("input", u.input_tokens), ("cached", u.cached_tokens), ("output", u.output_tokens)):
            if n:
                self.tokens.labels(*labels, kind).inc(n)
        if u.tool_calls:
            self.tool_calls.labels(*labels).inc(u.tool_calls)

    def backend_error(self, backend: str, message: str) -> None:
        self.backend_errors.labels(backend).inc()

    def rate_limited(self, platform: str) -> None:
        self.rate_limited_total.labels(platform).inc()

    def retried(self, platform: str) -> None:
        self.retries.labels(platform).inc()

    def budget_wait(self, platform: str, seconds: float) -> None:
        self.budget_waits.labels(platform).inc()
        self.budget_wait_seconds.labels(platform).inc(seconds)

    def feedback(self, platform: str, assistant: str, rating: int) -> None:
        self.ratings.labels(platform, assistant, "up" if rating > 0 else "down").inc()

    def retention_swept(self, deleted: int, *, failed: bool = False) -> None:
        self.retention_sweeps.labels("failed" if failed else "ok").inc()
        if deleted:
            self.retention_deleted.inc(deleted)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
