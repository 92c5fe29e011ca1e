"""Reads wait for the views, never write them: a citizen reading right after a step sees it; with
the projector stopped a read still answers (with what the views hold) and changes nothing; the
service says it is not ready while the views lag too far, and stays ready with events parked."""

from __future__ import annotations

import pytest
import requests
from nameko.containers import ServiceContainer

from services.tracking.dependencies import TrackingRuntime
from services.tracking.domainmodel import Actor
from services.tracking.service import TrackingService
from shared.chassis.auth import mint_token
from shared.chassis.config import load_config
from tests.stack import create_vhost, delete_vhost
from tests.support import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache frente a la escuela", "location": {"lat": 20.5931, "long": -100.392},
    "channel": "window", "sla_hours": 72,
}
READY_MAX_LAG_EVENTS = 3
OPERATOR = Actor("op-070", "operator", "phone_070")


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'ana-{role}', (role,))}"}


class Tracking:
    """Tracking running in this process (so the test can stop its projector), on a RabbitMQ
    virtual host of its own."""

    def __init__(self, pg_env: dict[str, str]) -> None:
        self.vhost = create_vhost()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = load_config(
            ROOT / "services" / "tracking" / "config.yaml", **pg_env,
            AMQP_URI=f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
            WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", POSTGRES_ENABLE_DB_FUNCTIONS="y",
            READ_WAIT_SECONDS=1, READY_MAX_LAG_EVENTS=READY_MAX_LAG_EVENTS,
            PROJECTION_POLL_INTERVAL=0.05)
        self.container = ServiceContainer(TrackingService, config)
        self.container.start()
        [self.runtime] = [d for d in self.container.dependencies
                          if isinstance(d, TrackingRuntime)]

    def open_report(self, **changes) -> str:
        response = requests.post(f"{self.url}/reports", json={**POTHOLE, **changes},
                                 headers=auth("operator"), timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["folio"]

    def assign(self, folio: str, crew_id: str) -> None:
        response = requests.post(f"{self.url}/reports/{folio}/assign", json={"crew_id": crew_id},
                                 headers=auth("supervisor"), timeout=10)
        assert response.status_code == 200, response.text

    def staff_view(self, folio: str) -> requests.Response:
        return requests.get(f"{self.url}/reports/{folio}", headers=auth("supervisor"),
                            timeout=10)

    def ready(self) -> requests.Response:
        return requests.get(f"{self.url}/readyz", timeout=10)

    def stop(self) -> None:
        self.container.stop()
        delete_vhost(self.vhost)


@pytest.fixture
def tracking(pg_env):
    running = Tracking(pg_env)
    yield running
    running.stop()


def test_a_read_right_after_a_step_sees_it(tracking):
    folio = tracking.open_report()
    assert requests.get(f"{tracking.url}/reports/{folio}", timeout=10).status_code == 200
    tracking.assign(folio, "C-07")
    view = tracking.staff_view(folio)
    assert view.status_code == 200 and (view.json()["step"], view.json()["crew_id"]) == (
        "assigned", "C-07")


def test_with_the_projector_stopped_a_read_answers_with_what_is_there_and_writes_nothing(
        tracking):
    folio = tracking.open_report()
    views = tracking.runtime.projector
    wait_for(lambda: views.public_view(folio), message="the opening in the views")
    views.follower.stop()
    position = views.position()

    tracking.assign(folio, "C-07")
    view = tracking.staff_view(folio)

    assert view.status_code == 200 and view.json()["step"] == "opened"
    assert views.position() == position  # the read ran no projection
    assert views.follower.lag_events() == 1


def test_not_ready_while_the_views_lag_too_far_and_ready_with_events_parked(tracking):
    wait_for(lambda: tracking.ready().status_code == 200, message="ready")
    app = tracking.runtime.app
    app.open_report(  # a description PostgreSQL cannot store in the views: parked
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="Bache\x00", location={"lat": 20.59, "long": -100.39},
        actor=OPERATOR)
    wait_for(lambda: tracking.ready().json()["parked"]["reports"] == 1, message="parked")
    ready = tracking.ready()
    assert ready.status_code == 200 and ready.json()["projection_lag"] == 0

    tracking.runtime.projector.follower.stop()
    for _ in range(READY_MAX_LAG_EVENTS + 1):
        tracking.open_report()
    wait_for(lambda: tracking.ready().json()["relay_lag"] == 0, message="the relay")
    behind = tracking.ready()
    assert behind.status_code == 503
    assert behind.json()["projection_lag"] == READY_MAX_LAG_EVENTS + 1
    assert behind.json()["projection_lag_seconds"] > 0 and behind.json()["ready"] is False
