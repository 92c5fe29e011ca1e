"""Intake's probes (a mixin of IntakeService): ready while its store answers."""

from __future__ import annotations

from typing import Any

from shared.chassis import health

from .application import IntakeApplication


class IntakeHealth(health.Health):
    """/healthz, /readyz and /metrics (shared/chassis/health.py) with intake's own checks."""

    intake: IntakeApplication

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """GET /readyz (shared/chassis/health.py): ready while the store answers."""
        checks: dict[str, Any] = {"store": True, "catalog": 0}
        try:
            checks["catalog"] = len(self.intake.catalog())
        except Exception:
            checks["store"] = False
        return checks["store"], checks
