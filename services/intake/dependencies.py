"""nameko DependencyProviders that build intake's store, its tracking port and the contact
handoff in `setup()` (nameko starts extensions concurrently)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider

from shared.chassis.handoff import declare_contact_queue
from shared.chassis.rpcclient import RemoteService, RpcClient
from shared.chassis.runtime import app_env, wait_for_database
from shared.chassis.sqlstore import SqlStore
from shared.chassis.transient import until_ready
from shared.contracts import contacts

from . import schemas
from .application import IntakeApplication
from .catalog import ServiceDefinition
from .store import IntakeStore

log = logging.getLogger(__name__)
SEED = Path(__file__).with_name("catalog_seed.json")


def seed_catalog() -> list[ServiceDefinition]:
    return [ServiceDefinition.from_dict(d) for d in json.loads(SEED.read_text("utf-8"))]


class TrackingPort:
    """The application's view of tracking, over RPC."""

    def __init__(self, remote: RemoteService) -> None:
        self.remote = remote

    def open_report(self, payload: dict[str, Any], on_behalf_of: str | None) -> dict[str, Any]:
        return self.remote.call("open_report", payload, on_behalf_of=on_behalf_of)

    def open_nearby(self, service_code: str, bbox: tuple[float, float, float, float]
                    ) -> list[dict[str, Any]]:
        return self.remote.call("open311_requests", {
            "service_code": service_code, "status": "open",
            "bbox": ",".join(f"{v:.7f}" for v in bbox), "limit": 20})

    def public_report(self, folio: str, access_token: str | None = None) -> dict | None:
        return self.remote.call("get_report", folio, access_token)


class ContactHandoff:
    """Publishes subscription requests to notifications' queue, with a publisher confirm."""

    def __init__(self, amqp_uri: str, queue_type: str | None = None) -> None:
        import kombu

        with kombu.Connection(amqp_uri) as conn:
            declare_contact_queue(conn.default_channel, queue_type)
        self.publisher = Publisher(amqp_uri, use_confirms=True)
        self.schema = contacts.SubscriptionRequestSchema()

    def subscribe(self, request: dict[str, Any]) -> None:
        body = self.schema.dump(self.schema.load(request))
        self.publisher.publish(body, exchange=contacts.EXCHANGE, routing_key=contacts.ROUTING_KEY,
                               mandatory=True, delivery_mode=2)


class IntakeRuntime(DependencyProvider):
    """`self.intake` in an entrypoint: the application, wired to tracking for this worker."""

    tracking = RpcClient("tracking")

    def setup(self) -> None:
        config = self.container.config
        schemas.configure(config)
        # PostgreSQL or RabbitMQ down, restarting or busy: wait (logging), never exit.
        env = app_env(config)
        wait_for_database(env, "intake", "intake: the database")
        self.store = until_ready(lambda: IntakeStore(SqlStore.from_env(env, name="intake")),
                                 "intake: its tables")
        added = self.store.seed(seed_catalog()) if not self.store.services() else 0
        if added:
            log.info("service catalog seeded with %d services", added)
        self.contacts = until_ready(lambda: ContactHandoff(
            config["AMQP_URI"], config.get("EVENTS_QUEUE_TYPE") or None), "intake: RabbitMQ")
        self.radius = float(config.get("DUPLICATE_RADIUS_M") or 50)
        self.status_url = str(config.get("STATUS_PAGE_URL") or "")

    def stop(self) -> None:
        self.store.sql.close()

    def get_dependency(self, worker_ctx: Any) -> IntakeApplication:
        remote = self.tracking.get_dependency(worker_ctx)
        return IntakeApplication(self.store, TrackingPort(remote), self.contacts,
                                 duplicate_radius_m=self.radius, status_url=self.status_url)
