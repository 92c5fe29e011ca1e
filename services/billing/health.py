"""Billing's /healthz, /readyz and /metrics, and the timer that settles lost online payments."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from nameko.timer import timer

from shared.chassis import health

from . import records
from .citizen import settle_checkout
from .dependencies import Billing
from .provider import PaymentProviderError

log = logging.getLogger(__name__)


class BillingHealth(health.Health):
    """/healthz, /readyz and /metrics (shared/chassis/health.py) with billing's own checks."""

    billing: Billing

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while the store answers and the lists do not lag beyond the bounds."""
        return self.billing.runtime.readiness()

    def refresh_metrics(self) -> None:
        self.billing.runtime.refresh_gauges()

    @timer(interval=60)
    def settle_lost_checkouts(self) -> None:
        """Each minute: a checkout pending for 15 minutes whose callback never came is asked
        about at the provider (approved: applied once by its reference; declined: closed)."""
        billing = self.billing
        if not billing.runtime.leadership.leading.is_set():
            return  # one replica asks; any would be safe, but one is enough
        older = billing.now() - timedelta(minutes=15)
        for reference in records.pending_checkouts(billing.store, older, limit=100):
            try:
                word = billing.provider.status(reference)
            except PaymentProviderError as error:
                log.warning("the provider did not answer about %s: %s", reference, error)
                return
            if word is not None:
                settle_checkout(billing, word)
