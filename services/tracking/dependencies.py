"""nameko DependencyProviders for tracking: the application, its projector and its outbox relay."""

from __future__ import annotations

from typing import Any, cast

from shared.chassis.follower import LogFollower
from shared.chassis.runtime import EventSourcedRuntime
from shared.contracts.cloudevents import CloudEvent

from . import schemas
from .read.projection import ReportProjector
from .write.application import TrackingApplication
from .write.outgoing import CloudEventConverter

# The application's own settings, beside the store's (shared/chassis/runtime.py: app_env).
APP_KEYS = ("FOLIO_PREFIX", "FOLIO_BLOCK_SIZE", "TIMEZONE")


class Tracking:
    """What a worker gets: the application, the projector (views) and the relay."""

    def __init__(self, runtime: TrackingRuntime) -> None:
        self.runtime = runtime
        self.app: TrackingApplication = runtime.app
        self.projector: ReportProjector = runtime.projector
        self.relay: LogFollower | None = runtime.relay
        self.leading = runtime.leading
        self.converter: CloudEventConverter = runtime.cloud_events

    def fresh_views(self) -> ReportProjector:
        """The projector, once its views hold what was stored when the read began (a command
        may have landed a moment ago), or after READ_WAIT_SECONDS with what is there."""
        self.runtime.await_projections()
        return self.projector

    def report_events(self, folio: str, after_version: int = 0) -> list[CloudEvent]:
        """The report's events after a version, as the relay publishes them (for a consumer
        that found a gap in what it received)."""
        return [self.converter.convert(event) for event in self.app.history(folio, after_version)]


class TrackingRuntime(EventSourcedRuntime):
    """Builds the application in setup(); runs the projector and relay as managed threads."""

    application_class = TrackingApplication
    app_keys = APP_KEYS

    def setup(self) -> None:
        schemas.configure(self.container.config)  # the edge's settings (trusted media, dates)
        super().setup()

    def projections(self, app: TrackingApplication, options: dict[str, Any]) -> list[LogFollower]:
        self.projector = ReportProjector(app, **options)
        return [cast(LogFollower, self.projector.follower)]  # built with an app: it follows

    def converter(self, app: TrackingApplication) -> CloudEventConverter:
        self.cloud_events = CloudEventConverter(app)
        return self.cloud_events

    def get_dependency(self, worker_ctx: Any) -> Tracking:
        return Tracking(self)
