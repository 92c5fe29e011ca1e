"""The eventsourced runtime: a DependencyProvider that builds a service's Application and its log
followers (projections and the outbox relay) in setup(), runs the followers as managed threads
while this replica leads, and stops them; plus the one config-to-environment helper.

A service subclasses EventSourcedRuntime, names its application and builds its projections:

    class TrackingRuntime(EventSourcedRuntime):
        application_class = TrackingApplication
        app_keys = ("FOLIO_PREFIX", "TIMEZONE")

        def projections(self, app, options):
            return [ReportProjector(app, **options).follower]

        def converter(self, app):
            return CloudEventConverter(app)   # what the relay publishes (None: no relay)

setup() waits, with a log line every few seconds, while PostgreSQL or RabbitMQ is down,
restarting or busy: a replica never exits on a transient error at start-up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nameko.extensions import DependencyProvider

from shared.chassis import esrecorder
from shared.chassis.follower import LogFollower
from shared.chassis.leadership import leadership_for
from shared.chassis.outbox import Publisher, relay_follower
from shared.chassis.sqlstore import PostgresStore, SqlStore
from shared.chassis.transient import until_ready

# What eventsourcing and the SqlStore read (persistence is chosen by environment, never in code),
# each with its default when the config leaves it empty; None: the library's own.
STORE_SETTINGS: dict[str, str | None] = {
    "PERSISTENCE_MODULE": None, "SQLITE_DBNAME": None, "SQLITE_LOCK_TIMEOUT": None,
    "POSTGRES_DBNAME": None, "POSTGRES_HOST": None, "POSTGRES_PORT": None, "POSTGRES_USER": None,
    "POSTGRES_PASSWORD": "",  # trust or peer auth has none, and eventsourcing wants the key
    "POSTGRES_SCHEMA": None, "POSTGRES_PRE_PING": None, "POSTGRES_LOCK_TIMEOUT": None,
    "POSTGRES_POOL_SIZE": None, "POSTGRES_MAX_OVERFLOW": None,
    "POSTGRES_ENABLE_DB_FUNCTIONS": None, "CREATE_TABLE": None,
}
# The runtime's own settings (a service's config.yaml lists them for operators).
RUNTIME_SETTINGS: dict[str, Any] = {
    "RELAY_ENABLED": "true", "RELAY_POLL_INTERVAL": 1.0, "RELAY_COALESCE": 0.003,
    "RELAY_HOLD_AFTER_CONFIRM": 0.0, "PROJECTION_POLL_INTERVAL": 1.0,
    "PROJECTION_COALESCE": 0.1, "LEADERSHIP_POLL_INTERVAL": 1.0, "READ_WAIT_SECONDS": 2.0,
    "READY_MAX_LAG_EVENTS": 5000, "READY_MAX_LAG_SECONDS": 60.0,
    "EVENTS_EXCHANGE": "expediente.events",
}


def app_env(config: Mapping[str, Any], keys: Iterable[str] = ()) -> dict[str, str]:
    """The environment of a service's eventsourcing application and SqlStore, from its nameko
    config: the store's settings (and `keys`, the application's own) as strings. On PostgreSQL
    the event store's recorder is the chassis' (esrecorder.py: readers never pass over an id)."""
    env: dict[str, str] = {}
    for key, default in [*STORE_SETTINGS.items(), *((k, None) for k in keys)]:
        value = config.get(key)
        if value not in (None, ""):
            env[key] = str(value)
        elif default is not None:
            env[key] = default
    if env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
        env.setdefault("APPLICATION_RECORDER_TOPIC", esrecorder.TOPIC)
    return env


def setting(config: Mapping[str, Any], key: str) -> Any:
    """A runtime setting from the config, or its default (RUNTIME_SETTINGS)."""
    value = config.get(key)
    return RUNTIME_SETTINGS[key] if value in (None, "") else value


def wait_for_database(env: Mapping[str, str], name: str, what: str) -> None:
    """Return once the store `env` names answers (a log line every few seconds until then)."""
    store = SqlStore.from_env(env, name=name)
    try:
        until_ready(lambda: _reach(store), what)
    finally:
        store.close()


def _reach(store: SqlStore) -> None:
    if isinstance(store, PostgresStore):
        store.connect().close()  # a connect timeout of its own, not the pool's
    else:
        store.run("SELECT 1")


class EventSourcedRuntime(DependencyProvider):
    """Builds the application and its followers in setup(); runs and stops the followers."""

    application_class: Any
    app_keys: tuple[str, ...] = ()

    def projections(self, app: Any, options: dict[str, Any]) -> list[LogFollower]:
        """The service's projection followers, built with `options` (poll, coalesce, leading)."""
        return []

    def converter(self, app: Any) -> Callable[[Any], Any] | None:
        """Stored notification -> CloudEvent for the relay; None: the service publishes none."""
        return None

    def setup(self) -> None:
        self.build(self.container.config, self.container.service_name)

    def build(self, config: Mapping[str, Any], service: str) -> None:
        """What setup() builds, from a config (also for a service's CLI, outside nameko)."""
        self.config = config
        env = app_env(config, self.app_keys)
        # The application reads os.environ too (eventsourcing's construct_env): so does the probe.
        wait_for_database({**os.environ, **env}, self.application_class.name,
                          f"{service}: the database")
        self.app = until_ready(lambda: self.application_class(env=env),
                               f"{service}: the event store")
        if isinstance(self.app.recorder, esrecorder.LogRecorder):
            until_ready(self.app.recorder.upgrade_insert_function, f"{service}: the event store")
        self.leadership = leadership_for(
            self.app.sql, self.app.name, on_wake=self.wake,
            channel=getattr(self.app.recorder, "channel_name", None),
            poll_interval=float(setting(config, "LEADERSHIP_POLL_INTERVAL")))
        self.projection_followers: list[LogFollower] = until_ready(
            lambda: self.projections(self.app, self._options("PROJECTION")),
            f"{service}: the projections")
        self.relay = until_ready(self._relay, f"{service}: the relay")
        self.followers = [*self.projection_followers, *([self.relay] if self.relay else [])]
        # An application that calls its saved_listeners after each save wakes them at once;
        # saves of other replicas reach the leader through LISTEN, the rest through the poll.
        getattr(self.app, "saved_listeners", []).append(self.wake)

    def _options(self, prefix: str) -> dict[str, Any]:
        return {"poll_interval": float(setting(self.config, f"{prefix}_POLL_INTERVAL")),
                "coalesce": float(setting(self.config, f"{prefix}_COALESCE") or 0),
                "leading": self.leadership.leading}

    def _relay(self) -> LogFollower | None:
        convert = self.converter(self.app)
        enabled = str(setting(self.config, "RELAY_ENABLED")).lower() in ("1", "true", "yes")
        if convert is None or not enabled:
            return None
        publisher = Publisher(self.config["AMQP_URI"], setting(self.config, "EVENTS_EXCHANGE"))
        hold = float(setting(self.config, "RELAY_HOLD_AFTER_CONFIRM") or 0)
        return relay_follower(self.app, convert, publisher, hold_after_confirm=hold,
                              **self._options("RELAY"))

    def wake(self) -> None:
        """A save here, or (as leader) a NOTIFY from any replica's save."""
        for follower in self.followers:
            follower.wake.set()

    def start(self) -> None:
        service = self.container.service_name
        self.container.spawn_managed_thread(self.leadership.run, identifier=f"{service}.leader")
        for follower in self.followers:
            self.container.spawn_managed_thread(follower.run,
                                                identifier=f"{service}.{follower.name}")

    def stop(self) -> None:
        # Whatever setup() got to build (it may have been stopped while it waited).
        for follower in getattr(self, "followers", ()):
            follower.stop()
        if hasattr(self, "leadership"):
            self.leadership.stop()
        if hasattr(self, "app"):
            self.app.close()

    def kill(self) -> None:
        self.stop()

    # ---- what entrypoints use ------------------------------------------------------------------

    @property
    def leading(self) -> threading.Event:
        return self.leadership.leading

    def await_projections(self) -> bool:
        """Wait (at most READ_WAIT_SECONDS) until the projections hold every event stored when
        the read began; then the read answers with what is there. A read never writes."""
        stored = self.app.recorder.max_notification_id() or 0
        deadline = time.monotonic() + float(setting(self.config, "READ_WAIT_SECONDS"))
        return all(f.wait_for(stored, max(0.0, deadline - time.monotonic()))
                   for f in self.projection_followers)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, checks): the store answers and no follower lags beyond READY_MAX_LAG_EVENTS
        or READY_MAX_LAG_SECONDS. Parked events are counted, not blocking."""
        checks: dict[str, Any] = {"store": True, "leader": self.leading.is_set()}
        try:
            lags = {f.name: (f.lag_events(), f.lag_seconds(), f.parked_count())
                    for f in self.followers}
        except Exception:
            checks["store"] = False
            return False, checks
        for kind, followers in (("projection", self.projection_followers),
                                ("relay", [self.relay] if self.relay else [])):
            if followers:
                checks[f"{kind}_lag"] = max(lags[f.name][0] for f in followers)
                checks[f"{kind}_lag_seconds"] = round(max(lags[f.name][1] for f in followers), 3)
        checks["parked"] = {name: lag[2] for name, lag in lags.items()}
        too_far = any(events > int(setting(self.config, "READY_MAX_LAG_EVENTS"))
                      or seconds > float(setting(self.config, "READY_MAX_LAG_SECONDS"))
                      for events, seconds, _ in lags.values())
        return not too_far, checks

    def refresh_gauges(self) -> None:
        """Lag gauges, for /metrics."""
        for follower in self.followers:
            follower.lag_events()
            follower.lag_seconds()


class RuntimeStore(DependencyProvider):
    """The SqlStore of the service's eventsourced application, for a consumer of other services'
    events whose read models live beside the service's own (one store, also in a test's memory):
    `views = RuntimeStore()` next to the service's EventSourcedRuntime."""

    store: SqlStore | None = None

    def get_dependency(self, worker_ctx: Any) -> SqlStore:
        if self.store is None:  # found once: the runtime builds its app in its own setup()
            runtime = next(dependency for dependency in self.container.dependencies
                           if isinstance(dependency, EventSourcedRuntime))
            self.store = runtime.app.sql
        return self.store
