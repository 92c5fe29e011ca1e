"""nameko DependencyProviders for tracking: the application, its projector and its outbox relay."""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider

from shared.chassis.leadership import leadership_for
from shared.chassis.outbox import OutboxRelay, Publisher
from shared.contracts.cloudevents import CloudEvent

from .read.projection import ReportProjector, run_forever
from .write.application import TrackingApplication
from .write.outgoing import CloudEventConverter

log = logging.getLogger(__name__)

# Configuration keys handed to the eventsourcing application (persistence chosen by environment).
APP_KEYS = (
    "PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT", "POSTGRES_DBNAME",
    "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SCHEMA",
    "POSTGRES_PRE_PING", "POSTGRES_LOCK_TIMEOUT", "POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW",
    "POSTGRES_ENABLE_DB_FUNCTIONS",
    "FOLIO_PREFIX", "FOLIO_BLOCK_SIZE", "TIMEZONE", "CREATE_TABLE",
)


def app_env(config: dict[str, Any]) -> dict[str, str]:
    env = {key: str(config[key]) for key in APP_KEYS if config.get(key) not in (None, "")}
    env.setdefault("POSTGRES_PASSWORD", "")  # trust or peer auth: eventsourcing wants the key
    return env


class Tracking:
    """What a worker gets: the application, the projector (views) and the relay."""

    def __init__(self, app: TrackingApplication, projector: ReportProjector,
                 relay: OutboxRelay | None, leading: threading.Event,
                 converter: CloudEventConverter) -> None:
        self.app = app
        self.projector = projector
        self.relay = relay
        self.leading = leading
        self.converter = converter

    def report_events(self, folio: str, after_version: int = 0) -> list[CloudEvent]:
        """The report's events after a version, as the relay publishes them (for a consumer
        that found a gap in what it received)."""
        return [self.converter.convert(event) for event in self.app.history(folio, after_version)]


class TrackingRuntime(DependencyProvider):
    """Builds the application in setup(); runs the projector and relay as managed threads."""

    def setup(self) -> None:
        config = self.container.config
        self.app = TrackingApplication(env=app_env(config))
        self.projector = ReportProjector(self.app)
        self.converter = CloudEventConverter(self.app)
        self.relay: OutboxRelay | None = None
        if str(config.get("RELAY_ENABLED", "true")).lower() in ("1", "true", "yes"):
            self.relay = OutboxRelay(
                name=self.app.name,
                select=lambda start, limit: self.app.recorder.select_notifications(start, limit),
                max_id=self.app.recorder.max_notification_id,
                convert=CloudEventConverter(self.app),
                publisher=Publisher(config["AMQP_URI"], config.get("EVENTS_EXCHANGE",
                                                                   "expediente.events")),
                store=self.app.sql,
                poll_interval=float(config.get("RELAY_POLL_INTERVAL", 1.0)),
                coalesce=float(config.get("RELAY_COALESCE", 0.003) or 0),
                hold_after_confirm=float(config.get("RELAY_HOLD_AFTER_CONFIRM", 0) or 0),
            )
        self._projector_wake = threading.Event()
        self._stopping = threading.Event()
        self.app.saved_listeners.append(self._wake)
        self.leadership = leadership_for(
            self.app.sql, self.app.name, on_wake=self._wake,
            channel=getattr(self.app.recorder, "channel_name", None),
            poll_interval=float(config.get("LEADERSHIP_POLL_INTERVAL", 1.0)),
        )
        if self.relay is not None:
            self.relay.leading = self.leadership.leading

    def _wake(self) -> None:
        """A save here, or (as leader) a NOTIFY from any replica's save."""
        self._projector_wake.set()
        if self.relay is not None:
            self.relay.wake.set()

    def start(self) -> None:
        config = self.container.config
        poll = float(config.get("PROJECTION_POLL_INTERVAL", 1.0))
        coalesce = float(config.get("PROJECTION_COALESCE", 0.1) or 0)
        self.container.spawn_managed_thread(self.leadership.run, identifier="tracking.leader")
        self.container.spawn_managed_thread(
            lambda: run_forever(self.projector, self._projector_wake, self._stopping, poll,
                                coalesce=coalesce, leading=self.leadership.leading),
            identifier="tracking.projector",
        )
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run, identifier="tracking.relay")

    def stop(self) -> None:
        self._stopping.set()
        self.leadership.stop()
        self._projector_wake.set()
        if self.relay is not None:
            self.relay.stop()
        self.app.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: Any) -> Tracking:
        return Tracking(self.app, self.projector, self.relay, self.leadership.leading,
                        self.converter)
