"""Prometheus conventions: `expediente_` prefix, units in names, a request histogram."""

from __future__ import annotations

import time
from typing import Any

from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from werkzeug.wrappers import Response

REQUEST_SECONDS = Histogram(
    "expediente_request_duration_seconds",
    "Time to serve one RPC call, HTTP request or event",
    ["service", "entrypoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
REQUEST_ERRORS = Counter(
    "expediente_request_errors_total",
    "Entrypoint calls that ended in an exception",
    ["service", "entrypoint", "error"],
)
ERROR_ANSWERS = Counter(
    "expediente_http_error_answers_total",
    "HTTP answers that were an error, by wire code (unavailable: a dependency was down)",
    ["code"],
)


class RequestMetrics(DependencyProvider):
    """Times every entrypoint of the service it is declared on."""

    def setup(self) -> None:
        self._started: dict[Any, float] = {}

    def worker_setup(self, worker_ctx: Any) -> None:
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        started = self._started.pop(worker_ctx, None)
        service = self.container.service_name
        name = worker_ctx.entrypoint.method_name
        if started is not None:
            REQUEST_SECONDS.labels(service, name).observe(time.perf_counter() - started)
        if exc_info is not None:
            REQUEST_ERRORS.labels(service, name, exc_info[0].__name__).inc()


def exposition() -> Response:
    """The /metrics response."""
    return Response(generate_latest(), status=200, content_type=CONTENT_TYPE_LATEST)
