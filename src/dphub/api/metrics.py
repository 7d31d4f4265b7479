"""Prometheus metrics: what this API process served, and what the metastore says of the jobs.

Request counts, latencies and bytes are counted by each API process (run several, and each has
its own; Prometheus adds them up). Job figures are read from the metastore at each scrape, so they
are the whole hub's, whichever process answers and whichever worker did the work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dphub.metastore.models import Job
from dphub.pipeline import jobs

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNMATCHED = "unmatched"
"""The route label of requests no route took (404s of unknown paths): one label, not one per URL."""


class HubMetrics:
    """One app's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dphub_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "dphub_http_request_duration_seconds",
            "Time to answer, from the request to the last byte of the answer.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.received = Counter(
            "dphub_http_received_bytes",
            "Bytes of request bodies received (uploads to the hub's own bitstore among them).",
            ("route",),
            registry=self.registry,
        )
        self.sent = Counter(
            "dphub_http_sent_bytes",
            "Bytes of answer bodies sent (files served among them).",
            ("route",),
            registry=self.registry,
        )
        self.jobs = JobCollector()
        self.registry.register(self.jobs)

    def observe(
        self, method: str, route: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if received:
            self.received.labels(route).inc(received)
        if sent:
            self.sent.labels(route).inc(sent)


class JobCollector(Collector):
    """The processing queue and finished jobs, read from the metastore when scraped."""

    def __init__(self) -> None:
        self.sessions: sessionmaker[Session] | None = None

    def collect(self) -> Iterator[Any]:
        if self.sessions is None:
            return
        with self.sessions() as db:
            counts = dict(
                db.execute(select(Job.state, func.count()).group_by(Job.state)).tuples().all()
            )
            finished = db.execute(
                select(Job.state, Job.started_at, Job.finished_at).where(
                    Job.state.in_((jobs.DONE, jobs.FAILED)), Job.started_at.is_not(None)
                )
            ).all()
        queue = GaugeMetricFamily(
            "dphub_jobs",
            "Processing jobs by state (queued is the queue's depth).",
            labels=["state"],
        )
        for state in (jobs.QUEUED, jobs.RUNNING, jobs.DONE, jobs.FAILED):
            queue.add_metric([state], counts.get(state, 0))
        yield queue
        seconds = CounterMetricFamily(
            "dphub_job_seconds",
            "Seconds finished jobs took, from claim to end, by outcome.",
            labels=["outcome"],
        )
        done = CounterMetricFamily(
            "dphub_jobs_finished", "Finished jobs by outcome.", labels=["outcome"]
        )
        for outcome in (jobs.DONE, jobs.FAILED):
            spans = [
                (end - start).total_seconds()
                for state, start, end in finished
                if state == outcome and start is not None and end is not None
            ]
            seconds.add_metric([outcome], sum(spans))
            done.add_metric([outcome], len(spans))
        yield seconds
        yield done


class MetricsMiddleware:
    """Times and counts every HTTP request under its route's template (``/api/package/{owner}``),
    so that a label never holds a user's value."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counted = {"received": 0, "sent": 0, "status": 500}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counted["received"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counted["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                counted["sent"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(
                scope["method"],
                route,
                counted["status"],
                time.perf_counter() - started,
                counted["received"],
                counted["sent"],
            )
