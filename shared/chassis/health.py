"""/healthz, /readyz and /metrics for every service (a mixin of the service class).

A service says what being ready means by overriding `readiness()`, and refreshes the gauges it
computes on demand in `refresh_metrics()`; a check that raises is "not ready", never a 500."""

from __future__ import annotations

import logging
from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.http import http
from shared.chassis.metrics import exposition
from shared.chassis.openapi import PLAIN, api

log = logging.getLogger(__name__)


class AliveSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    """`ready`, and the service's own checks beside it."""

    class Meta:
        unknown = INCLUDE

    ready = fields.Boolean(required=True)


class Health:
    """Kubernetes probes and Prometheus: liveness, readiness (with the service's own checks)
    and the metrics."""

    @http("GET", "/healthz")
    @api(answers={200: AliveSchema})
    def healthz(self, request: Request) -> Response:
        """GET /healthz -> {"status": "ok"} while the process serves requests."""
        return json_response({"status": "ok"})

    @http("GET", "/readyz")
    @api(answers={200: ReadinessSchema, 503: ReadinessSchema})
    def readyz(self, request: Request) -> Response:
        """GET /readyz -> 200 {"ready": true, ...checks} or 503 {"ready": false, ...}."""
        try:
            ready, checks = self.readiness()
        except Exception:
            log.exception("the readiness checks failed")
            ready, checks = False, {}
        return json_response({"ready": ready, **checks}, 200 if ready else 503)

    @http("GET", "/metrics")
    @api(answers={200: PLAIN})
    def metrics_endpoint(self, request: Request) -> Response:
        """GET /metrics -> Prometheus' text format."""
        try:
            self.refresh_metrics()
        except Exception:  # stale gauges beat no metrics at all
            log.exception("refreshing the metrics failed")
        return exposition()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, checks to show); a service overrides it with what it depends on."""
        return True, {}

    def refresh_metrics(self) -> None:
        """Set the gauges computed on demand (lags, counts) before they are exposed."""
