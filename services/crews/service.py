"""CrewsService: crews' wiring (the doors are in doors.py; docs/new-service.md)."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.photos import Photos
from shared.chassis.rpcclient import Remote
from shared.chassis.runtime import RuntimeStore
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import dependencies, doors, field, fieldphotos, jobs, webdoors


class CrewsService(doors.CrewDoors, doors.MaterialDoors, field.FieldDoors,
                   fieldphotos.FieldPhotoDoors, jobs.WorkListDoors,
                   webdoors.FieldAppDoors, doors.CrewsHealth, openapi.ApiDocument):
    name = "crews"

    crews = dependencies.CrewsRuntime()
    views = RuntimeStore()  # the work lists' store, for the report events' consumer
    auth = Auth()
    tracking = Remote("tracking")  # the report's owner: field steps go there
    photos = Photos()  # the field's photos (served at /media/)
    gc_tuning = GcTuning()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
