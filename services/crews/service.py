"""CrewsService: crews' wiring (the doors are in doors.py; docs/new-service.md)."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import dependencies, doors


class CrewsService(doors.CrewDoors, doors.MaterialDoors, doors.CrewsHealth,
                   openapi.ApiDocument):
    name = "crews"

    crews = dependencies.CrewsRuntime()
    auth = Auth()
    gc_tuning = GcTuning()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
