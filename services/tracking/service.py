"""TrackingService: tracking's wiring. Its doors are mixins in services/tracking/doors/: the RPC
API (rpc.py), the JSON API (http.py), the citizen's pages (pages.py) and the probes (health.py);
this class names the service and declares the dependencies they share."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.secrets import SecretsCheck

from .dependencies import TrackingRuntime

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from .doors import health, http, pages, rpc


class TrackingService(http.ReportsApi, rpc.ReportsRpc, pages.StatusPages, health.TrackingHealth,
                      openapi.ApiDocument):
    name = "tracking"

    tracking = TrackingRuntime()
    gc_tuning = GcTuning()
    auth = Auth()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
