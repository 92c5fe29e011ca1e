"""IntakeService: the front door's HTTP entrypoints (Open311, portal, chatbot, app API, staff).

Each door is a mixin in its own module; this class declares the dependencies they share."""

from __future__ import annotations

from typing import Any

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import health, openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import app_api, staff
from .chatbot import http as chatbot_http
from .dependencies import IntakeRuntime
from .open311 import http as open311_http
from .portal import http as portal


class IntakeService(open311_http.Open311Api, portal.PortalPages, chatbot_http.ChatbotWebhook,
                    app_api.AppApi, staff.StaffApi, health.Health, openapi.ApiDocument):
    name = "intake"

    intake = IntakeRuntime()
    gc_tuning = GcTuning()
    auth = Auth()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """GET /readyz (shared/chassis/health.py): ready while the store answers."""
        checks: dict[str, Any] = {"store": True, "catalog": 0}
        try:
            checks["catalog"] = len(self.intake.catalog())
        except Exception:
            checks["store"] = False
        return checks["store"], checks
