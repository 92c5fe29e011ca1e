"""BulletinService: the bulletin's wiring (an example service: docs/new-service.md)."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import health, openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import doors, tally


class BulletinService(doors.BulletinDoors, health.Health, openapi.ApiDocument):
    name = "bulletin"

    store = tally.TallyStore()
    auth = Auth()
    gc_tuning = GcTuning()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
