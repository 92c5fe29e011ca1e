"""NotificationsService: notifications' wiring (the doors are in doors.py)."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.consumer import SqlStoreProvider
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.rpcclient import Remote
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import deliveries, doors, live, sender


class NotificationStore(SqlStoreProvider):
    """The service's own store (subscriptions, the delivery log), its tables made in setup()."""

    def setup(self) -> None:
        super().setup()
        deliveries.prepare(self.store)


class NotificationsService(doors.Consumers, doors.CitizenDoors, doors.LiveDoors,
                           doors.WebhookDoors, doors.OperatorDoors, doors.NotificationsHealth,
                           openapi.ApiDocument):
    name = "notifications"

    store = NotificationStore()
    notices = sender.Sender(store="store")
    live = live.LiveFeed()
    auth = Auth()
    tracking = Remote("tracking")  # a gap in a report's events is filled from its owner
    gc_tuning = GcTuning()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
