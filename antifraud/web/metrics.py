"""Prometheus metrics of the web app, served at ``/metrics`` (scraped as the ``antifraud-web`` job).

Labels are route templates (``/api/cases/{case_id}``, never the path itself: it may hold an account
or ID number), methods, status classes, check decisions: fixed vocabularies only. With several server
processes (``antifraud web --workers N``) each writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` and
a scrape of any one of them sums them all (prometheus-client's multiprocess mode).
"""

import os
import time

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_SECONDS = Histogram(
    "antifraud_web_request_seconds",
    "Time to answer a request, by route template, method and status class (2xx, 4xx, 5xx).",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
CHECK_DECISIONS = Counter(
    "antifraud_web_check_decisions_total", "Pre-transfer checks answered, by decision.", ["decision"]
)
LIVE_CONNECTIONS = Gauge(
    "antifraud_web_live_warning_connections",
    "Counter pages connected to the live warning stream.",
    multiprocess_mode="livesum",
)
LOGIN_FAILURES = Counter("antifraud_web_login_failures_total", "Refused logins (unknown token, or throttled).")

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics_page() -> Response:
    """The samples; every process's, summed, with several server processes."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """ASGI middleware: each HTTP request's time by the route template it matched (``unmatched`` for a path
    no route serves: a scan must not make a series per path it tries)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/api/check" if scope["path"] == "/api/check" else "unmatched")
            REQUEST_SECONDS.labels(template, scope["method"], f"{status[0] // 100}xx").observe(
                time.perf_counter() - started
            )
