"""A client that lost the answer sends the same command again with the same key: the report
records it once and answers where it stands. Events stored before commands had a key still load."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import Headers

from services.tracking import schemas
from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector
from services.tracking.write import commands
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.auth import Principal
from shared.contracts.events import load_data

OPERATOR = Actor("op-1", "operator", "phone_070")
SUPERVISOR = Actor("sup-1", "supervisor", "staff")

# Every staff command, in an order the lifecycle allows, as a client sends it.
WALK = [
    ("triage", "supervisor", {"department": "obras", "priority": "high", "service_code": "bache"}),
    ("assign", "supervisor", {"crew_id": "C-07"}),
    ("dispatch_crew", "crew", {}),
    ("set_en_route", "crew", {}),
    ("arrive", "crew", {}),
    ("add_photo", "crew", {"url": "https://fotos.example/antes.jpg", "stage": "before"}),
    ("log_materials", "crew", {"items": [{"code": "asfalto-frio", "quantity": 2}]}),
    ("complete_work", "crew", {"notes": "Listo"}),
    ("add_comment", "supervisor", {"text": "Gracias por reportar"}),
    ("close_report", "supervisor", {"resolution": "fixed"}),
    ("reopen", "supervisor", {"reason": "Sigue el bache"}),
    ("mark_duplicate", "operator", {"duplicate_of": "ORIGINAL"}),
]


class FakeAuth:
    """The caller a door would have verified: one role, crew C-07's member if a crew."""

    def __init__(self) -> None:
        self.role = "operator"

    def require(self, *roles: str) -> Principal:
        assert self.role in roles
        return Principal(subject=f"ana-{self.role}", roles=(self.role,),
                         crew_id="C-07" if self.role == "crew" else None)


@pytest.fixture
def app():
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def open_pothole(app) -> str:
    return app.open_report(
        service_code="bache", service_name="Bache", department="obras",
        description="Bache frente a la escuela", location={"lat": 20.59, "long": -100.39},
        actor=OPERATOR).folio


def test_every_staff_command_sent_twice_with_its_key_is_recorded_once(app):
    folio, original = open_pothole(app), open_pothole(app)
    auth = FakeAuth()
    for name, role, payload in WALK:
        auth.role = role
        payload = {key: original if value == "ORIGINAL" else value
                   for key, value in payload.items()}
        body = {**payload, "step_id": f"clave-{name}"}
        first = commands.state(commands.execute(app, auth, name, folio, body))
        again = commands.state(commands.execute(app, auth, name, folio, body))

        assert again == first, name
        assert first["version"] == len(app.history(folio)), name
    assert len(app.history(folio)) == 1 + len(WALK)
    assert app.get_report(folio).step_ids == {f"clave-{name}" for name, _, _ in WALK}


def test_without_a_key_a_repeated_comment_is_a_second_comment(app):
    folio = open_pothole(app)
    app.add_comment(folio, SUPERVISOR, text="Vamos el lunes")
    app.add_comment(folio, SUPERVISOR, text="Vamos el lunes")

    assert len(app.history(folio)) == 3


@pytest.mark.parametrize("verdict", ["confirm", "dispute"])
def test_the_citizens_word_sent_twice_with_its_key_counts_once(app, verdict):
    opened = app.open_report(
        service_code="bache", service_name="Bache", department="obras", description="Bache",
        location={"address": "Av. Juárez 10"}, actor=OPERATOR)
    app.close_report(opened.folio, SUPERVISOR, resolution="fixed")
    use_case = {"confirm": app.citizen_confirm, "dispute": app.citizen_dispute}[verdict]
    data = schemas.CitizenFeedbackSchema().load(
        {"access_token": opened.access_token, "comment": "Sigue igual", "step_id": "voz-1"})

    first = use_case(opened.folio, data.pop("access_token"), **data)
    again = use_case(opened.folio, opened.access_token, **data)

    assert again.version == first.version == 3
    assert first.citizen_feedback == {"confirm": "confirmed", "dispute": "disputed"}[verdict]


def test_over_http_the_idempotency_key_header_is_the_key_unless_the_body_names_one():
    headers = Headers({"idempotency-key": "5f0c-assign"})  # header names ignore case

    assert commands.keyed({"crew_id": "C-07"}, headers) == {"crew_id": "C-07",
                                                              "step_id": "5f0c-assign"}
    assert commands.keyed({"crew_id": "C-07", "step_id": "del-cuerpo"}, headers)["step_id"] == (
        "del-cuerpo")
    assert commands.keyed({"crew_id": "C-07"}, Headers()) == {"crew_id": "C-07"}


def test_a_key_too_long_is_refused_like_any_bad_field():
    payload = commands.keyed({"crew_id": "C-07"}, Headers({"Idempotency-Key": "k" * 101}))

    with pytest.raises(ValidationError) as refused:
        schemas.AssignSchema().load(payload)
    assert "step_id" in refused.value.messages


def test_an_assignment_stored_before_commands_had_a_key_still_loads(sqlite_env):
    app = TrackingApplication(env=sqlite_env)
    try:
        folio = open_pothole(app)
        report = app.get_report(folio)
        report.assign(SUPERVISOR, "C-07")
        [assigned] = report.collect_events()
        del assigned.__dict__["step_id"]  # the shape Report.Assigned had until now
        stored = app.mapper.to_stored_event(assigned)
        assert b"step_id" not in stored.state and b"C-07" in stored.state
        app.recorder.insert_events([stored])

        loaded = app.get_report(folio)
        assert (loaded.version, loaded.step, loaded.crew_id) == (2, "assigned", "C-07")
        assert not hasattr(app.history(folio)[-1], "step_id")
        app.dispatch_crew(folio, SUPERVISOR, step_id="s-1")
        assert app.get_report(folio).step == "dispatched"

        published = CloudEventConverter(app).convert(app.history(folio)[1])
        assert "step_id" not in published.data
        load_data("assigned", published.data)
        projector = ReportProjector(app)
        projector.catch_up()
        view = projector.staff_view(folio)
        assert (view["step"], view["crew_id"]) == ("dispatched", "C-07")
        assert view["timeline"][1]["step_id"] is None
    finally:
        app.close()
