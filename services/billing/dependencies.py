"""Billing's providers: the eventsourced runtime (the application and its follower), the payment
provider's adapter, and the store the report events' consumer writes the repair costs to."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from shared.chassis.follower import LogFollower
from shared.chassis.runtime import EventSourcedRuntime
from shared.chassis.sqlstore import SqlStore

from . import accountview, records, repaircosts
from .application import Applied, BillingApplication
from .domainmodel import Account
from .provider import PaymentProvider
from .read import BillingProjector

APP_KEYS = ("TIMEZONE", "RULES_DIR")


class Billing:
    """What a worker gets: the application, its lists, the provider and the city's clock."""

    def __init__(self, runtime: BillingRuntime) -> None:
        self.runtime = runtime
        self.app: BillingApplication = runtime.app
        self.store: SqlStore = runtime.app.sql
        self.provider: PaymentProvider = runtime.provider
        self.timezone = runtime.timezone
        self.config = runtime.config

    def lists(self) -> BillingProjector:
        """The lists, once they hold what was stored when the read began."""
        self.runtime.await_projections()
        return self.runtime.projector

    def now(self) -> datetime:
        return datetime.now(self.timezone)

    def setting(self, key: str) -> str:
        return str(self.config.get(key) or "")

    def document_secret(self) -> bytes:
        return self.setting("DOCUMENT_SECRET").encode()

    def statement(self, account: Account, period: str | None = None) -> dict[str, Any]:
        """The account's statement as of now (numbered by `period`, a batch's month)."""
        now = self.now()
        return accountview.statement(account, self.app.quote(account, now.date()), now,
                                     self.document_secret(), self.setting("PUBLIC_URL"), period)

    def receipt(self, applied: Applied) -> dict[str, Any]:
        """A payment's receipt, with its verification code."""
        return accountview.receipt(applied, self.document_secret(), self.setting("PUBLIC_URL"))


class BillingRuntime(EventSourcedRuntime):
    """Builds the application in setup(); runs the lists' follower as a managed thread."""

    application_class = BillingApplication
    app_keys = APP_KEYS

    def setup(self) -> None:
        super().setup()
        records.prepare(self.app.sql)
        repaircosts.prepare(self.app.sql)
        self.timezone = ZoneInfo(str(self.config.get("TIMEZONE") or "America/Mexico_City"))
        self.provider = PaymentProvider(
            str(self.config.get("PAYMENTS_URL") or "http://127.0.0.1:8090"),
            str(self.config.get("PAYMENTS_SECRET") or ""),
            timeout=float(self.config.get("PAYMENTS_TIMEOUT") or 10))

    def projections(self, app: BillingApplication, options: dict[str, Any]) -> list[LogFollower]:
        self.projector = BillingProjector(app, **options)
        return [cast(LogFollower, self.projector.follower)]

    def get_dependency(self, worker_ctx: Any) -> Billing:
        return Billing(self)
