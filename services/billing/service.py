"""BillingService: billing's wiring (the doors are in citizen.py, window.py, admin.py and
costdoors.py; docs/billing.md)."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.rpcclient import Remote
from shared.chassis.runtime import RuntimeStore
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import admin, citizen, costdoors, dependencies, health, window


class BillingService(citizen.CitizenDoors, window.WindowDoors, admin.TreasuryDoors,
                     costdoors.RepairCostDoors, health.BillingHealth, openapi.ApiDocument):
    name = "billing"

    billing = dependencies.BillingRuntime()
    views = RuntimeStore()  # the repair costs' store, for the report events' consumer
    auth = Auth()
    tracking = Remote("tracking")  # the report events a gap needs
    notifications = Remote("notifications")  # statements and receipts go out through it
    gc_tuning = GcTuning()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
