"""Crews' providers: the eventsourced runtime (the application and the views' follower)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from shared.chassis.follower import LogFollower
from shared.chassis.runtime import EventSourcedRuntime

from . import schemas, worklists
from .application import CrewsApplication
from .read import CrewsProjector

APP_KEYS = ("TIMEZONE",)


class Crews:
    """What a worker gets: the application, the views, and the city's clock."""

    def __init__(self, runtime: CrewsRuntime) -> None:
        self.runtime = runtime
        self.app: CrewsApplication = runtime.app
        self.timezone = ZoneInfo(str(runtime.config.get("TIMEZONE") or "America/Mexico_City"))

    def fresh_views(self) -> CrewsProjector:
        """The views, once they hold what was stored when the read began (a change may have
        landed a moment ago), or after READ_WAIT_SECONDS with what is there."""
        self.runtime.await_projections()
        return self.runtime.projector

    def now(self) -> datetime:
        return datetime.now(self.timezone)


class CrewsRuntime(EventSourcedRuntime):
    """Builds the application in setup(); runs the views' follower as a managed thread."""

    application_class = CrewsApplication
    app_keys = APP_KEYS

    def setup(self) -> None:
        schemas.configure(self.container.config)  # the edge's settings (how late a device syncs)
        super().setup()
        worklists.prepare(self.app.sql)

    def projections(self, app: CrewsApplication, options: dict[str, Any]) -> list[LogFollower]:
        self.projector = CrewsProjector(app, **options)
        return [cast(LogFollower, self.projector.follower)]

    def get_dependency(self, worker_ctx: Any) -> Crews:
        return Crews(self)
