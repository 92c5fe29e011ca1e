"""Intake's use cases with hand-written fakes for tracking and notifications: one folio per
submission, answers checked against the catalog, idempotent retries, contact kept private."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.application import (
    IdempotencyKeyReused,
    IntakeApplication,
    Submission,
    SubmissionInProgress,
    UnknownService,
    distance_m,
)
from services.intake.catalog import CatalogError, check_definition
from services.intake.dependencies import seed_catalog
from services.intake.store import IntakeStore
from shared.chassis.sqlstore import SqliteStore
from shared.contracts.errors import WireError


class FakeTracking:
    def __init__(self, nearby=()):
        self.opened: list[dict] = []
        self.nearby = list(nearby)
        self.fail = False
        self.lose_the_answer = False
        self.by_key: dict[str, dict] = {}
        self.refuse: WireError | None = None

    def open_report(self, payload, on_behalf_of):
        """Like tracking: a repeated request key answers with the report it opened."""
        if self.fail:
            raise RuntimeError("tracking is down")
        if self.refuse is not None:
            raise self.refuse
        key = payload.get("request_key")
        if key in self.by_key:
            return self.by_key[key]
        self.opened.append(payload)
        receipt = {"folio": f"QRO-2026-{len(self.opened):06d}",
                   "access_token": payload.get("access_token") or "secret-token",
                   "opened_at": "2026-11-22T10:00:00-06:00", "due_at": None, "version": 1}
        if key is not None:
            self.by_key[key] = receipt
        if self.lose_the_answer:  # saved, but intake never hears back (timeout, crash)
            self.lose_the_answer = False
            raise TimeoutError("tracking.open_report did not answer in 10 s")
        return receipt

    def open_nearby(self, service_code, bbox):
        self.bbox = bbox
        return self.nearby

    def public_report(self, folio, access_token=None):
        return None


class FakeContacts:
    def __init__(self):
        self.requests: list[dict] = []

    def subscribe(self, request):
        self.requests.append(request)


@pytest.fixture
def store():
    store = IntakeStore(SqliteStore(":memory:"))
    store.seed(seed_catalog())
    return store


@pytest.fixture
def tracking():
    return FakeTracking()


@pytest.fixture
def contacts():
    return FakeContacts()


@pytest.fixture
def intake(store, tracking, contacts):
    return IntakeApplication(store, tracking, contacts, status_url="http://t/seguimiento")


def pothole(**changes) -> Submission:
    fields = {"channel": "web", "service_code": "bache", "description": "Bache profundo",
              "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}
    return Submission(**{**fields, **changes})


def test_a_pothole_report_gets_a_folio_and_carries_the_catalog_s_department_and_sla(
        intake, tracking):
    receipt = intake.submit(pothole())
    assert receipt["folio"] == "QRO-2026-000001"
    assert receipt["status_url"] == "http://t/seguimiento/QRO-2026-000001"
    sent = tracking.opened[0]
    assert (sent["department"], sent["sla_hours"], sent["channel"]) == ("obras_publicas", 72, "web")
    assert sent["attributes"] == {"tamano": "grande"}


def test_an_unknown_or_retired_service_is_refused(intake, store, tracking):
    with pytest.raises(UnknownService):
        intake.submit(pothole(service_code="volcan"))
    retired = {**store.services()["grafiti"].as_dict(), "active": False}
    intake.save_service(retired)
    with pytest.raises(UnknownService):
        intake.submit(pothole(service_code="grafiti", answers={}))
    assert tracking.opened == []


@pytest.mark.parametrize("answers, field", [
    ({}, "attribute[tamano]"),
    ({"tamano": "gigante"}, "attribute[tamano]"),
    ({"tamano": "chico", "color": "rojo"}, "attribute[color]"),
    ({"tamano": ["chico", "grande"]}, "attribute[tamano]"),
])
def test_answers_are_checked_against_the_category_s_questions(intake, tracking, answers, field):
    with pytest.raises(CatalogError) as error:
        intake.submit(pothole(answers=answers))
    assert field in error.value.errors
    assert tracking.opened == []


def test_answers_are_cleaned_by_datatype(store):
    garbage = store.services()["recoleccion_basura"]
    assert garbage.check_answers({"tipo": "no_paso", "dias_sin_servicio": "3"}) == {
        "tipo": "no_paso", "dias_sin_servicio": 3}
    drain = store.services()["drenaje_obstruido"]
    assert drain.check_answers({"problema": ["olor", "tapado", "olor"]}) == {
        "problema": ["tapado", "olor"]}
    car = store.services()["vehiculo_abandonado"]
    assert car.check_answers({"desde": "2026-11-01T08:00:00Z"}) == {
        "desde": "2026-11-01T08:00:00+00:00"}
    with pytest.raises(CatalogError):
        garbage.check_answers({"tipo": "no_paso", "dias_sin_servicio": "nan"})


def test_the_same_idempotency_key_gives_the_same_folio_and_one_report(intake, tracking):
    first = intake.submit(pothole(idempotency_key="app:k-1"))
    again = intake.submit(pothole(idempotency_key="app:k-1"))
    assert first["folio"] == again["folio"]
    assert len(tracking.opened) == 1


def test_a_key_reused_for_another_report_is_refused(intake):
    intake.submit(pothole(idempotency_key="app:k-2"))
    with pytest.raises(IdempotencyKeyReused):
        intake.submit(pothole(idempotency_key="app:k-2", description="Otro bache"))


def test_a_retry_after_tracking_saved_but_never_answered_gets_that_one_report(intake, tracking):
    tracking.lose_the_answer = True
    with pytest.raises(TimeoutError):
        intake.submit(pothole(idempotency_key="app:k-3"))
    again = intake.submit(pothole(idempotency_key="app:k-3"))
    assert len(tracking.opened) == 1
    assert again["folio"] == "QRO-2026-000001"
    assert again["access_token"] == tracking.opened[0]["access_token"]


def test_a_retry_while_the_first_attempt_is_pending_sends_the_same_open(intake, tracking, store):
    submission = pothole(idempotency_key="app:k-5")
    store.claim("app:k-5", submission.fingerprint(), "app", token="t" * 24,
                access_token="a" * 24)  # the first attempt, still waiting for tracking
    receipt = intake.submit(submission)
    assert tracking.opened[0]["request_key"] == "app:k-5"
    assert receipt["access_token"] == "a" * 24 and receipt["token"] == "t" * 24


def test_a_key_held_by_an_attempt_without_a_kept_access_token_says_so(intake, store):
    submission = pothole(idempotency_key="app:k-6")
    store.claim("app:k-6", submission.fingerprint(), "app", token="t", access_token=None)
    with pytest.raises(SubmissionInProgress):
        intake.submit(submission)


def test_when_tracking_fails_the_retry_opens_the_report_once(intake, tracking):
    tracking.fail = True
    with pytest.raises(RuntimeError):
        intake.submit(pothole(idempotency_key="app:k-4"))
    tracking.fail = False
    first = intake.submit(pothole(idempotency_key="app:k-4"))
    assert intake.submit(pothole(idempotency_key="app:k-4"))["folio"] == first["folio"]
    assert len(tracking.opened) == 1


def test_contact_details_go_to_notifications_and_never_to_tracking(intake, tracking, contacts):
    contact = {"email": "ana@example.com", "phone": "+52 442 123 4567", "first_name": "Ana"}
    receipt = intake.submit(pothole(contact=contact))
    assert receipt["subscribed"] is True
    assert "ana@example.com" not in str(tracking.opened)
    assert "Ana" not in str(tracking.opened)
    handed = contacts.requests[0]
    assert handed["folio"] == receipt["folio"] and handed["contact"]["email"] == "ana@example.com"
    assert handed["access_token"] == "secret-token"


def test_the_open311_token_finds_the_folio(intake):
    receipt = intake.submit(pothole())
    assert intake.folio_for_token(receipt["token"]) == (True, receipt["folio"])
    assert intake.folio_for_token("nope") == (False, None)


def test_possible_duplicates_are_the_open_reports_within_the_radius(store, contacts):
    near = {"folio": "QRO-2026-000009", "lat": 20.5932, "long": -100.3921}
    far = {"folio": "QRO-2026-000010", "lat": 20.5940, "long": -100.3920}  # ~100 m north
    tracking = FakeTracking(nearby=[far, near])
    intake = IntakeApplication(store, tracking, contacts, duplicate_radius_m=50)
    found = intake.possible_duplicates("bache", 20.5931, -100.392)
    assert [r["folio"] for r in found] == ["QRO-2026-000009"]
    assert found[0]["distance_m"] < 20
    min_lat, min_long, max_lat, max_long = tracking.bbox
    assert min_lat < 20.5931 < max_lat and min_long < -100.392 < max_long


def test_distance_is_great_circle_metres():
    assert distance_m(20.0, -100.0, 20.0, -100.0) == 0
    assert 110_000 < distance_m(20.0, -100.0, 21.0, -100.0) < 112_000


@pytest.mark.parametrize("definition, field", [
    ({"code": "Bad Code", "name": "x", "group": "g", "department": "d"}, "code"),
    ({"code": "ok", "name": "", "group": "g", "department": "d"}, "name"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d", "sla_hours": -1}, "sla_hours"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d",
      "questions": [{"code": "q", "datatype": "color", "description": "?"}]},
     "questions[0].datatype"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d",
      "questions": [{"code": "q", "datatype": "singlevaluelist", "description": "?"}]},
     "questions[0].values"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d", "colour": 1}, "colour"),
    ({"code": "ok", "name": "Bache\x00", "group": "g", "department": "d"}, "name"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d\ud800"}, "department"),
    ({"code": "ok", "name": "x", "group": "g", "department": "d",
      "questions": [{"code": "q", "datatype": "string", "description": "?\x07"}]},
     "questions[0].description"),
])
def test_an_admin_s_bad_definition_is_refused_with_the_field(definition, field):
    with pytest.raises(CatalogError) as error:
        check_definition(definition)
    assert field in error.value.errors


def test_an_admin_adds_a_service_and_it_is_offered(intake):
    intake.save_service({
        "code": "fuga_gas", "name": "Olor a gas", "group": "Emergencias",
        "department": "proteccion_civil", "sla_hours": 2, "keywords": ["gas"],
        "questions": [{"code": "intensidad", "datatype": "singlevaluelist",
                       "description": "¿Qué tan fuerte?", "required": True,
                       "values": [{"key": "leve", "name": "Leve"},
                                  {"key": "fuerte", "name": "Fuerte"}]}]})
    assert "fuga_gas" in [s.code for s in intake.catalog()]
    assert intake.submit(pothole(service_code="fuga_gas", answers={"intensidad": "leve"}))


def test_a_database_from_before_access_tokens_were_kept_gets_the_column():
    sql = SqliteStore(":memory:")
    with sql.transaction() as tx:
        tx.execute("CREATE TABLE intake_submissions (idempotency_key TEXT PRIMARY KEY,"
                   " fingerprint TEXT NOT NULL, token TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,"
                   " state TEXT NOT NULL, folio TEXT, response TEXT, created_at TEXT NOT NULL)")
    store = IntakeStore(sql)
    assert store.claim("app:old", "f", "app", "t", "a" * 24).outcome == "new"
    assert store.claim("app:old", "f", "app", "u", "b" * 24).access_token == "a" * 24


def test_after_the_replay_window_intake_keeps_no_access_token(intake, store):
    old = intake.submit(pothole(idempotency_key="app:old"))
    recent = intake.submit(pothole(idempotency_key="app:recent", description="Otro bache"))
    with store.sql.transaction() as tx:
        tx.execute("UPDATE intake_submissions SET created_at = %s WHERE idempotency_key = %s",
                   ((datetime.now(UTC) - timedelta(hours=30)).isoformat(), "app:old"))

    assert store.forget_access_tokens(datetime.now(UTC) - timedelta(hours=24)) == 1

    replay = intake.submit(pothole(idempotency_key="app:old"))
    assert replay["folio"] == old["folio"] and "access_token" not in replay
    assert intake.submit(pothole(idempotency_key="app:recent", description="Otro bache")
                         )["access_token"] == recent["access_token"]
    with store.sql.transaction() as tx:
        kept = [row[0] for row in tx.execute("SELECT response FROM intake_submissions").fetchall()]
    assert sum(old["access_token"] in text for text in kept) == 0


@pytest.mark.parametrize("code", ["forbidden", "invalid_input", "not_found"])
def test_a_report_tracking_refuses_for_good_keeps_nothing_of_its_key(intake, tracking, store,
                                                                      code):
    tracking.refuse = WireError(code, "refused")
    with pytest.raises(WireError):
        intake.submit(pothole(idempotency_key="staff:k-refused"))
    rows, _ = store.sql.run("SELECT count(*) FROM intake_submissions")
    assert rows[0][0] == 0
    tracking.refuse = None  # the caller fixed what was wrong: the same key now opens the report
    assert intake.submit(pothole(idempotency_key="staff:k-refused"))["folio"]


def test_a_report_tracking_could_not_take_now_keeps_its_key_for_the_retry(intake, tracking,
                                                                          store):
    tracking.refuse = WireError("version_conflict", "busy")
    with pytest.raises(WireError):
        intake.submit(pothole(idempotency_key="app:k-busy"))
    rows, _ = store.sql.run("SELECT state FROM intake_submissions")
    assert rows == [("pending",)]
