"""IntakeService: the front door's wiring. Each door is a mixin in its own module (Open311, the
portal with its photos, the chatbot, the app API, staff entry, the probes); this class names the
service and declares the dependencies they share."""

from __future__ import annotations

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import openapi
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.metrics import RequestMetrics
from shared.chassis.secrets import SecretsCheck

# Imported as modules, not classes: `nameko run` takes every class in this module that has
# entrypoints for a service, and the mixins are not services.
from . import app_api, health, staff
from .chatbot import http as chatbot_http
from .dependencies import IntakeRuntime
from .open311 import http as open311_http
from .portal import http as portal


class IntakeService(open311_http.Open311Api, portal.PortalPages, chatbot_http.ChatbotWebhook,
                    app_api.AppApi, staff.StaffApi, health.IntakeHealth, openapi.ApiDocument):
    name = "intake"

    intake = IntakeRuntime()
    gc_tuning = GcTuning()
    auth = Auth()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()
