"""Tracking's probes (a mixin of TrackingService): what ready means, and its gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

from shared.chassis import health

from ..dependencies import Tracking

EVENTS_STORED = Gauge("expediente_events_stored", "Events in the notification log", ["service"])


class TrackingHealth(health.Health):
    """/healthz, /readyz and /metrics (shared/chassis/health.py) with tracking's own checks."""

    name: str
    tracking: Tracking

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """GET /readyz (shared/chassis/health.py): ready while the store answers and neither the
        views nor the relay lag beyond READY_MAX_LAG_EVENTS / _SECONDS (both lags shown)."""
        return self.tracking.runtime.readiness()

    def refresh_metrics(self) -> None:
        """Before GET /metrics (shared/chassis/health.py) answers."""
        EVENTS_STORED.labels(self.name).set(self.tracking.app.recorder.max_notification_id() or 0)
        self.tracking.runtime.refresh_gauges()  # the followers' lags
