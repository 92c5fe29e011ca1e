"""Crews' work lists follow tracking's report events over the real bus: a supervisor's board and
the crews to suggest (nearest available first, with their workload), a crew's own jobs moving
step by step, and the lists equal to a rebuild from tracking's events, unchanged by a redelivered
event."""

from __future__ import annotations

import json
import time
import uuid

import kombu
import pytest
import requests

from services.crews import worklists
from shared.contracts.cloudevents import CloudEvent
from tests.e2e.test_field_steps import CITY, auth
from tests.support import wait_for

pytestmark = pytest.mark.e2e

DEPARTMENT = "servicios_publicos"
LAMP = {"service_code": "alumbrado_publico", "service_name": "Alumbrado público",
        "department": DEPARTMENT, "description": "Luminaria apagada en el parque",
        "location": {"lat": 20.5900, "long": -100.3900}, "channel": "phone_070"}
SUPERVISOR = auth("supervisor", department=DEPARTMENT)
ADMIN = auth("admin")
# Three crews of the department: one a block away, one across town, one busy.
CREWS = {"L-01": (20.5910, -100.3900, "available"), "L-02": (20.6500, -100.4500, "available"),
         "L-03": (20.5901, -100.3901, "busy")}


@pytest.fixture(scope="module")
def lamp_crews(stack):
    for code, (lat, long, availability) in CREWS.items():
        url = f"{stack.crews.url}/crews"
        made = requests.post(url, headers=ADMIN, timeout=10, json={
            "code": code, "name": f"Alumbrado {code}", "department": DEPARTMENT})
        assert made.status_code == 201, made.text
        for door, body in (("members", {"member_id": f"{code.lower()}-ana", "name": "Ana"}),
                           ("shift", {"action": "start"}),
                           ("position", {"lat": lat, "long": long}),
                           ("availability", {"availability": availability})):
            answer = requests.post(f"{url}/{code}/{door}", headers=ADMIN, json=body, timeout=10)
            assert answer.status_code == 200, (door, answer.text)
    return list(CREWS)


def job_of(stack, folio: str, headers) -> dict | None:
    answer = requests.get(f"{stack.crews.url}/field/jobs", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return next((job for job in answer.json()["jobs"] if job["folio"] == folio), None)


def on_board(stack, folio: str) -> dict | None:
    answer = requests.get(f"{stack.crews.url}/board", headers=SUPERVISOR, timeout=10)
    assert answer.status_code == 200, answer.text
    return next((job for job in answer.json()["jobs"] if job["folio"] == folio), None)


def open_lamp(stack) -> str:
    opened = requests.post(f"{stack.tracking.url}/reports", json=LAMP, timeout=10,
                           headers=auth("operator"))
    assert opened.status_code == 201, opened.text
    return opened.json()["folio"]


def assigned_lamp(stack, n: int) -> tuple[str, str]:
    """The n-th of a run of street lights: opened, and assigned to L-01 or L-02 in turn."""
    folio, crew = open_lamp(stack), f"L-0{1 + n % 2}"
    requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                  json={"crew_id": crew}, headers=SUPERVISOR).raise_for_status()
    return folio, crew


def lists_equal_a_rebuild(stack, folios: list[str], step: str) -> None:
    """Once every report is at `step` in the lists, they equal a rebuild from its events."""
    wait_for(lambda: all(f in (jobs := stored_jobs(stack)) and jobs[f]["step"] == step
                         for f in folios), timeout=60, message=f"every report at {step}")
    jobs = stored_jobs(stack)
    history = [event for folio in folios for event in tracking_events(stack, folio)]
    assert {folio: jobs[folio] for folio in folios} == worklists.rebuild(history)


def field_step(stack, folio: str, name: str, crew: str, **more) -> None:
    from datetime import datetime
    body = {"step": name, "step_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(CITY).isoformat(), **more}
    answer = requests.post(f"{stack.crews.url}/field/reports/{folio}/steps", json=body,
                           headers=auth("crew", crew_id=crew), timeout=20)
    assert answer.status_code == 200, answer.text


def test_the_board_suggests_the_nearest_available_crew_and_the_crew_sees_its_job_move(
        stack, lamp_crews):
    folio = open_lamp(stack)
    job = wait_for(lambda: on_board(stack, folio), message="the new report on the board")
    assert job["step"] == "opened" and job["crew_id"] is None
    assert job["description"] == LAMP["description"]
    assert job["location"]["lat"] == pytest.approx(20.59)

    suggested = requests.get(f"{stack.crews.url}/reports/{folio}/suggested-crews",
                             headers=SUPERVISOR, timeout=10).json()
    codes = [crew["code"] for crew in suggested["crews"]]
    assert codes[:2] == ["L-01", "L-02"] and "L-03" not in codes  # nearest first; busy left out
    assert suggested["crews"][0]["distance_km"] == pytest.approx(0.111, abs=0.01)
    before = suggested["crews"][0]["open_jobs"]

    assign = requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                           json={"crew_id": "L-01"}, headers=SUPERVISOR)
    assert assign.status_code == 200, assign.text
    mine = auth("crew", crew_id="L-01")
    job = wait_for(lambda: job_of(stack, folio, mine), message="the job in L-01's list")
    assert job["step"] == "assigned" and job["next_steps"] == ["dispatched"]
    assert job_of(stack, folio, auth("crew", crew_id="L-02")) is None  # not another crew's
    after = requests.get(f"{stack.crews.url}/reports/{folio}/suggested-crews",
                         headers=SUPERVISOR, timeout=10).json()["crews"][0]
    assert after["code"] == "L-01" and after["open_jobs"] == before + 1

    for name, step, following in (("dispatched", "dispatched", ["en_route", "arrived"]),
                                  ("arrived", "on_site", ["materials", "work_completed"]),
                                  ("work_completed", "work_completed", ["materials"])):
        field_step(stack, folio, name, "L-01", **({"notes": "Foco cambiado"}
                                                   if name == "work_completed" else {}))
        job = wait_for(lambda s=step: (j := job_of(stack, folio, mine)) and
                         j["step"] == s and j, message=f"the job at {step}")
        assert job["next_steps"] == following

    metrics = requests.get(f"{stack.crews.url}/metrics", timeout=10).text
    assert ('expediente_field_steps_total{department="servicios_publicos",origin="field",'
            'step="arrived"}') in metrics

    closed = requests.post(f"{stack.tracking.url}/reports/{folio}/close_report", headers=SUPERVISOR,
                           json={"resolution": "fixed", "notes": "Listo"}, timeout=10)
    assert closed.status_code == 200, closed.text
    wait_for(lambda: job_of(stack, folio, mine) is None, message="the closed job off the list")


def test_a_supervisor_sees_only_their_department_and_reads_need_a_role(stack, lamp_crews):
    other = requests.get(f"{stack.crews.url}/board?department=obras_publicas",
                         headers=SUPERVISOR, timeout=10)
    assert other.status_code == 403, other.text
    for door in ("/board", "/field/jobs", "/reports/QRO-2026-000001/suggested-crews"):
        assert requests.get(f"{stack.crews.url}{door}", timeout=10).status_code == 401
    assert requests.get(f"{stack.crews.url}/board", headers=auth("crew", crew_id="L-01"),
                        timeout=10).status_code == 403
    unknown = requests.get(f"{stack.crews.url}/reports/QRO-2026-999999/suggested-crews",
                           headers=SUPERVISOR, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def tracking_events(stack, folio: str) -> list[CloudEvent]:
    answer = requests.get(f"{stack.tracking.url}/reports/{folio}/events", timeout=10,
                          headers=auth("auditor"))
    assert answer.status_code == 200, answer.text
    return [CloudEvent.from_dict(event) for event in answer.json()["events"]]


def stored_jobs(stack) -> dict[str, dict]:
    rows = stack.query("crews", f"SELECT {', '.join(worklists.COLUMNS)} FROM work_jobs")
    return {row[0]: worklists.from_row(row) for row in rows}


def test_the_work_lists_equal_a_rebuild_from_the_events_and_a_redelivery_changes_nothing(
        stack, lamp_crews):
    folio = open_lamp(stack)
    requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                  json={"crew_id": "L-02"}, headers=SUPERVISOR).raise_for_status()
    field_step(stack, folio, "dispatched", "L-02")
    events = {}
    for known in wait_for(lambda: stored_jobs(stack), message="rows in the work lists"):
        events[known] = tracking_events(stack, known)
    # Every report the lists hold, once the consumer has caught up with its last event.
    wait_for(lambda: all(stored_jobs(stack)[f]["version"] == int(e[-1].data["version"])
                           for f, e in events.items()), message="the lists caught up")
    rebuilt = worklists.rebuild(event for history in events.values() for event in history)
    assert stored_jobs(stack) == rebuilt
    assert rebuilt[folio]["step"] == "dispatched" and rebuilt[folio]["crew_id"] == "L-02"

    # The bus delivers an old event again (same id), and then one of its earlier versions:
    # neither changes a thing.
    before = stored_jobs(stack)
    with kombu.Connection(stack.amqp_uri) as conn:
        producer = conn.Producer()
        for event in (events[folio][-1], events[folio][0]):
            producer.publish(json.dumps(event.to_dict()), exchange="expediente.events",
                             routing_key=event.type, content_type="application/cloudevents+json",
                             retry=True)
    time.sleep(1.5)  # what the consumer would need to apply them, were they news
    assert stored_jobs(stack) == before
    position = stack.query("crews", "SELECT version FROM stream_positions WHERE subject = ?",
                           (folio,))
    assert position == [(int(events[folio][-1].data["version"]),)]


def test_an_operator_catches_the_lists_up_with_everything_tracking_holds(stack, lamp_crews):
    """Crews joins a city whose reports were opened before its queue existed (here: its lists
    wiped): `catch_up_work_lists` fetches every report's events from tracking and applies them
    as the consumer would; run twice, it applies nothing more."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from tests.stack import pg_connect

    if stack.store != "postgres":
        pytest.skip("wipes the lists through PostgreSQL")
    folio = open_lamp(stack)
    wait_for(lambda: folio in stored_jobs(stack), message="the new report in the lists")
    with pg_connect() as conn:
        conn.execute(f"SET search_path TO {stack.schemas['crews']}")
        for table in ("work_jobs", "stream_positions", "processed_events"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
    assert stored_jobs(stack) == {}

    config = {"AMQP_URI": stack.amqp_uri}
    admin = {"authorization": ADMIN["Authorization"]}
    with ClusterRpcProxy(config, context_data=admin, timeout=60) as rpc:
        first = rpc.crews.catch_up_work_lists("all")
        again = rpc.crews.catch_up_work_lists("all")
    jobs = stored_jobs(stack)
    assert first["reports"] == len(jobs) >= 1 and first["events_applied"] >= len(jobs)
    assert again == {"reports": len(jobs), "events_applied": 0}
    history = [event for known in jobs for event in tracking_events(stack, known)]
    assert jobs == worklists.rebuild(history)
    assert jobs[folio]["step"] == "opened"


def test_crews_killed_while_events_flow_loses_none_and_applies_each_once(stack, lamp_crews):
    """kill -9 crews while reports open and get assigned: the events it had not acked, and those
    published while it was down, wait in its queue; after the restart the lists equal a rebuild
    from tracking's events."""
    import threading

    folios: list[str] = []
    failures: list[str] = []

    def city() -> None:  # 30 reports opened and assigned, one after another
        for n in range(30):
            try:
                folios.append(assigned_lamp(stack, n)[0])
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(repr(exc))

    load = threading.Thread(target=city)
    load.start()
    wait_for(lambda: len(folios) >= 5, message="reports flowing")
    stack.crews.kill9()
    time.sleep(1.0)  # events keep coming while crews is down
    stack.crews.start()
    load.join(timeout=120)
    assert not failures and len(folios) == 30

    lists_equal_a_rebuild(stack, folios, "assigned")


def test_two_crews_replicas_share_the_events_and_apply_each_once(stack, lamp_crews):
    """A second crews replica on the same store and queue: the two take events of the same
    reports in turns (the position row is locked per report) and the lists equal a rebuild."""
    from tests.support import ServiceProcess

    env = {key: value for key, value in stack.crews.env.items()
           if key != "CREWS_HTTP_ADDRESS"}  # the same store and vhost, a port of its own
    second = ServiceProcess("crews", env)
    try:
        second.start()
        folios = []
        for n in range(20):
            folio, crew = assigned_lamp(stack, n)
            folios.append(folio)
            field_step(stack, folio, "dispatched", crew)
        lists_equal_a_rebuild(stack, folios, "dispatched")
        consumed = [requests.get(f"{url}/metrics", timeout=10).text for url in
                    (stack.crews.url, second.url)]
        counted = [sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("expediente_consumer_events_processed_total{"))
                   for text in consumed]
        assert all(count > 0 for count in counted), counted  # both took a share
    finally:
        second.stop()
