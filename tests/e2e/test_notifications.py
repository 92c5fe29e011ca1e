"""Notifications over the real bus, on PostgreSQL: a citizen who reported with an email, a phone
for SMS and WhatsApp, and a browser that pressed "avísame" hears of every step exactly once on
each; a municipal system's webhook gets each event signed; a redelivered event, a restart and a
SIGKILL mid-send send nothing twice; a provider's errors are retried, then parked and replayed;
a follower confirms first; opt-out and erasure leave no personal data behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kombu
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from shared.chassis.auth import mint_token
from tests.notifystack import LocalServer, NotificationsStack, text_of
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e

PHONE = "+52 442 555 0101"
PHONE_E164 = "+524425550101"
STEPS = ["opened", "assigned", "crew_dispatched", "crew_en_route", "crew_arrived",
         "work_completed", "closed", "reopened"]
LABELS = ["Reporte recibido", "Asignado a una cuadrilla", "La cuadrilla salió",
          "La cuadrilla va en camino", "La cuadrilla llegó", "Trabajo terminado",
          "Reporte cerrado", "Reporte reabierto"]


def auth(role: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'e2e-{role}', (role,), **claims)}"}


SUPERVISOR, ADMIN, SYSTEM = auth("supervisor"), auth("admin"), auth("system")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = NotificationsStack(tmp_path_factory.mktemp("notify")).start()
    yield running
    running.stop()


def report(stack, contact: dict) -> dict:
    answer = requests.post(f"{stack.intake.url}/api/v1/reports", timeout=20, json={
        "service_code": "bache", "description": "Bache frente al mercado",
        "location": {"lat": 20.59, "long": -100.39}, "answers": {"tamano": "grande"},
        "contact": contact}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 201, answer.text
    return answer.json()


def command(stack, folio: str, name: str, **body) -> None:
    answer = requests.post(f"{stack.tracking.url}/reports/{folio}/{name}", json=body,
                           headers=SUPERVISOR, timeout=20)
    assert answer.status_code == 200, (name, answer.text)


def walk(stack, folio: str, steps: list[str]) -> None:
    """Record these steps (after `opened`) as the supervisor."""
    later = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    bodies = {"assigned": ("assign", {"crew_id": "C-01"}),
              "crew_dispatched": ("dispatch_crew", {}),
              "crew_en_route": ("set_en_route", {"eta": later}),
              "crew_arrived": ("arrive", {}),
              "photo_added": ("add_photo", {"url": f"{stack.intake.url}/media/after.jpg",
                                            "caption": "Listo", "stage": "after"}),
              "work_completed": ("complete_work", {"notes": "Bache tapado"}),
              "closed": ("close_report", {"resolution": "fixed", "notes": "Reparado"}),
              "reopened": ("reopen", {"reason": "Se volvió a hundir"})}
    for step in steps:
        name, body = bodies[step]
        command(stack, folio, name, **body)


def settled(stack, folio: str, expected: int) -> list[dict]:
    """The folio's deliveries, once there are `expected` and none is still to be sent."""
    def done():
        rows = stack.deliveries(folio=folio)
        open_ = [row for row in rows if row["status"] in ("pending", "sending")]
        return rows if len(rows) >= expected and not open_ else None
    try:
        rows = wait_for(done, timeout=60, message=f"{expected} deliveries of {folio} settled")
    except AssertionError:
        seen = stack.deliveries(folio=folio)
        counts: dict = {}
        for row in seen:
            key = (row["channel"], row["purpose"], row["status"])
            counts[key] = counts.get(key, 0) + 1
        queues = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", stack.vhost, "name",
                                 "messages", "messages_unacknowledged", "consumers"],
                                capture_output=True, text=True).stdout
        positions = stack.query("notifications", "SELECT * FROM stream_positions")
        events = stack.query("notifications", "SELECT folio, version, type FROM seen_events "
                                              "WHERE folio = ?", (folio,))
        print("queues, stream positions, events seen:", queues, positions, events, sep="\n")
        raise AssertionError(f"{len(seen)} of {expected} deliveries of {folio}: {counts}; "
                             f"{[r['detail'] for r in seen if r['status'] != 'sent'][:5]} "
                             f"(log: {stack.notifications.log_path})") from None
    assert isinstance(rows, list)
    return rows


def emails_to(stack, address: str) -> list:
    return [m for m in stack.emails() if m["To"] == address]


def phone_messages(stack, kind: str, to: str = PHONE_E164) -> list[dict]:
    return [m for m in stack.phone_messages()
            if m["body"].get("to") == to and (m["body"].get("type") == "template") == (
                kind == "whatsapp")]


def test_every_step_reaches_each_channel_once_and_each_webhook_signed(stack, tmp_path):
    receipt = report(stack, {"email": "ana@example.com", "phone": PHONE,
                             "notify_by": ["email", "sms", "whatsapp"]})
    folio = receipt["folio"]
    settled(stack, folio, 3)  # the report's opening told; the browser and systems come after
    browser = stack.new_push_subscription()
    pushed = requests.post(f"{stack.notifications.url}/reports/{folio}/push", timeout=10,
                           data=json.dumps({"subscription": browser}),
                           headers={"Content-Type": "text/plain"})
    assert pushed.status_code == 201, pushed.text
    receivers = {}
    for name, types, departments in (("everything", [], ["obras_publicas"]),
                                     ("closed_only", ["mx.expediente.report.closed"], []),
                                     ("elsewhere", [], ["servicios_publicos"])):
        port = free_port()
        hook = register(stack, f"http://127.0.0.1:{port}/hook", types, departments)
        rotated = requests.post(f"{stack.notifications.url}/webhooks/{hook['id']}/rotate",
                                headers=SYSTEM, timeout=10)  # the old and the new secret sign
        assert rotated.status_code == 200 and rotated.json()["secrets_valid"] == 2
        receivers[name] = (hook, LocalServer(tmp_path, "webhook_receiver.py", "--secret",
                                             rotated.json()["secret"], port=port).start())
    try:
        walk(stack, folio, STEPS[1:5] + ["photo_added"] + STEPS[5:])
        # 8 steps x (email, sms, whatsapp), 7 pushed, 8 events to `everything`, one `closed`.
        rows = settled(stack, folio, 8 * 3 + 7 + 8 + 1)
        assert {row["status"] for row in rows} == {"sent"}, rows
        mails = emails_to(stack, "ana@example.com")
        assert [m["Subject"].split(" · ")[0] for m in mails] == LABELS
        assert len({m["Message-ID"] for m in mails}) == 8
        assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in mails)
        assert "?token=" in text_of(mails[0])  # the reporter's private link
        assert len(phone_messages(stack, "sms")) == 8
        assert len(phone_messages(stack, "whatsapp")) == 8
        pushes = [json.loads(p["payload"]) for p in stack.pushes() if folio in p["payload"]]
        assert [p["title"].split(" · ")[0] for p in pushes] == LABELS[1:]  # after "avísame"
        got = {name: received(receiver) for name, (_, receiver) in receivers.items()}
        assert [json.loads(r["body"])["type"].rsplit(".", 1)[1] for r in got["everything"]] == [
            "assigned", "crew_dispatched", "crew_en_route", "crew_arrived",
            "photo_added", "work_completed", "closed", "reopened"]
        assert [json.loads(r["body"])["type"] for r in got["closed_only"]] == [
            "mx.expediente.report.closed"]
        assert got["elsewhere"] == []
        for name, records in got.items():
            old_secret = receivers[name][0]["secret"]
            for record in records:  # an independent Standard Webhooks implementation agrees
                assert record["verified"]
                Webhook(old_secret).verify(record["body"], {
                    "webhook-id": record["webhook-id"],
                    "webhook-timestamp": record["webhook-timestamp"],
                    "webhook-signature": record["webhook-signature"]})
    finally:
        for hook, receiver in receivers.values():
            receiver.stop()
            requests.delete(f"{stack.notifications.url}/webhooks/{hook['id']}", headers=SYSTEM,
                            timeout=10)


def register(stack, url: str, types: list[str], departments: list[str]) -> dict:
    answer = requests.post(f"{stack.notifications.url}/webhooks", headers=SYSTEM, timeout=10,
                           json={"url": url, "types": types, "departments": departments})
    assert answer.status_code == 201, answer.text
    return answer.json()


def received(receiver: LocalServer) -> list[dict]:
    answer = requests.get(f"{receiver.url}/_received", timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_a_redelivered_event_and_a_restart_send_nothing_again(stack):
    folio = report(stack, {"email": "beto@example.com"})["folio"]
    walk(stack, folio, ["assigned", "crew_dispatched"])
    settled(stack, folio, 3)
    events = requests.get(f"{stack.tracking.url}/reports/{folio}/events", headers=ADMIN,
                          timeout=10).json()["events"]
    with kombu.Connection(stack.amqp_uri) as conn:
        producer = conn.Producer()
        for event in events:  # the bus delivers each again
            producer.publish(json.dumps(event), exchange="expediente.events",
                             routing_key=event["type"], content_type="application/json")
    stack.notifications.stop()
    stack.notifications.start()
    walk(stack, folio, ["crew_en_route"])  # behind the redelivered ones in the queue
    settled(stack, folio, 4)
    assert [m["Subject"].split(" · ")[0] for m in emails_to(stack, "beto@example.com")] == \
        LABELS[:4]


def test_killed_mid_send_and_restarted_each_message_still_arrives_once(stack):
    stack.provider_mode(delay=4)  # the provider takes each message, answering late
    try:
        folio = report(stack, {"phone": "+52 442 555 0202", "email": "caro@example.com",
                               "notify_by": ["sms", "email"]})["folio"]
        try:
            wait_for(lambda: any(row["status"] == "sending" and row["channel"] == "sms"
                                 for row in stack.deliveries(folio=folio)),
                     timeout=30, message="the SMS in flight")
        except AssertionError:
            raise AssertionError(str(stack.deliveries(folio=folio))) from None
        stack.notifications.kill9()
    finally:
        stack.provider_mode(reset=True)
    stack.notifications.start()
    walk(stack, folio, ["assigned"])
    rows = settled(stack, folio, 4)
    assert {row["status"] for row in rows} == {"sent"}
    sms = phone_messages(stack, "sms", "+524425550202")
    assert len(sms) == 2  # the resend after the crash was the provider's 409: the same message
    assert len({m["idempotency_key"] for m in sms}) == 2
    # SMTP has no idempotency key: a resend would carry the same Message-ID (mail.py).
    mails = emails_to(stack, "caro@example.com")
    assert len({m["Message-ID"] for m in mails}) == 2


def test_a_provider_error_is_retried_and_one_that_never_ends_is_parked_then_replayed(stack):
    stack.provider_mode(fail=1, status=500)
    folio = report(stack, {"phone": "+52 442 555 0303"})["folio"]
    (first,) = settled(stack, folio, 1)
    assert (first["status"], first["attempts"]) == ("sent", 2)
    assert len(phone_messages(stack, "sms", "+524425550303")) == 1
    stack.provider_mode(status=500, forever=True)
    try:
        walk(stack, folio, ["assigned"])
        rows = settled(stack, folio, 2)
        parked = [row for row in rows if row["status"] == "parked"]
        assert len(parked) == 1 and parked[0]["attempts"] == 3, rows
        listed = requests.get(f"{stack.notifications.url}/deliveries?status=parked&channel=sms",
                              headers=ADMIN, timeout=10).json()["deliveries"]
        shown = next(d for d in listed if d["key"] == parked[0]["key"])
        assert [a["status"] for a in shown["attempts_made"]] == ["retry", "retry", "parked"]
    finally:
        stack.provider_mode(reset=True)
    replay = subprocess.run(
        [str(Path(sys.executable).parent / "expediente"), "--amqp-uri", stack.amqp_uri, "call",
         "notifications", "replay_deliveries", json.dumps({"keys": [parked[0]["key"]]}),
         "--role", "admin"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "EXPEDIENTE_ENV": "development"})
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout[replay.stdout.index("{"):])["replayed"] == 1
    wait_for(lambda: len(phone_messages(stack, "sms", "+524425550303")) == 2, timeout=30,
             message="the replayed SMS")


def test_a_follower_confirms_before_hearing_anything(stack):
    folio = report(stack, {"email": "dora@example.com"})["folio"]
    followed = requests.post(f"{stack.intake.url}/api/v1/reports/{folio}/follow", timeout=10,
                             json={"contact": {"email": "eli@example.com"}})
    assert followed.status_code == 202, followed.text
    (asked,) = wait_for(lambda: emails_to(stack, "eli@example.com"), timeout=30,
                        message="the confirmation")
    walk(stack, folio, ["assigned"])
    settled(stack, folio, 3)  # dora's two steps and eli's confirmation
    assert len(emails_to(stack, "eli@example.com")) == 1  # nothing before confirming
    link = re.search(r"(http://\S+/confirmar/\S+)", text_of(asked)).group(1)
    assert requests.get(link, timeout=10).status_code == 200  # a page: GET confirms nothing
    assert requests.post(link, timeout=10).status_code == 200
    walk(stack, folio, ["crew_dispatched"])
    wait_for(lambda: len(emails_to(stack, "eli@example.com")) == 2, timeout=30,
             message="the follower's first step")
    assert emails_to(stack, "eli@example.com")[1]["Subject"].startswith("La cuadrilla salió")


def test_opt_out_and_erasure_stop_messages_and_leave_no_personal_data(stack):
    folio = report(stack, {"email": "fer@example.com", "phone": "+52 442 555 0404",
                           "notify_by": ["email", "sms"]})["folio"]
    settled(stack, folio, 2)
    (mail,) = emails_to(stack, "fer@example.com")
    opt_out = mail["List-Unsubscribe"].strip("<>")
    one_click = requests.post(opt_out, data="List-Unsubscribe=One-Click", timeout=10,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200
    erased = requests.post(f"{stack.notifications.url}/erasures", headers=ADMIN, timeout=10,
                           json={"phone": "442 555 0404"})
    assert erased.json() == {"criterion": "phone", "subscriptions_erased": 1}, erased.text
    browser = stack.new_push_subscription()  # a marker: it hears the steps the others do not
    requests.post(f"{stack.notifications.url}/reports/{folio}/push", timeout=10,
                  json={"subscription": browser}).raise_for_status()
    walk(stack, folio, ["assigned", "crew_dispatched"])
    wait_for(lambda: len([p for p in stack.pushes() if folio in p["payload"]]) == 2,
             timeout=30, message="the marker's two steps")
    settled(stack, folio, 4)
    assert len(emails_to(stack, "fer@example.com")) == 1
    assert len(phone_messages(stack, "sms", "+524425550404")) == 1
    for table in stack.tables("notifications"):
        text = json.dumps(stack.query("notifications", f"SELECT * FROM {table}"), default=str)
        for personal in ("fer@example.com", "4425550404", "442 555 0404"):
            assert personal not in text, (table, personal)
    (erasure,) = stack.query("notifications", "SELECT criterion, subscriptions FROM erasures "
                                              "WHERE criterion = 'phone'")
    assert erasure == ("phone", 1)
    log = Path(stack.notifications.log_path).read_text(errors="replace")
    assert "fer@example.com" not in log and "4425550404" not in log


def test_a_webhook_that_never_answers_is_parked_then_replayed(stack, tmp_path):
    port = free_port()  # nothing listens there yet
    hook = register(stack, f"http://127.0.0.1:{port}/hook", ["mx.expediente.report.assigned"],
                    [])
    receiver = None
    try:
        folio = report(stack, {"email": "gil@example.com"})["folio"]
        walk(stack, folio, ["assigned"])
        (parked,) = wait_for(lambda: [row for row in stack.deliveries(folio=folio,
                                                                        channel="webhook")
                                      if row["status"] == "parked"],
                             timeout=60, message="the webhook's delivery parked")
        shown = requests.get(f"{stack.notifications.url}/webhooks/{hook['id']}/deliveries"
                             "?status=parked", headers=SYSTEM, timeout=10).json()["deliveries"]
        assert [len(d["attempts_made"]) for d in shown] == [3]
        receiver = LocalServer(tmp_path, "webhook_receiver.py", "--secret", hook["secret"],
                               port=port).start()
        replayed = requests.post(f"{stack.notifications.url}/deliveries/replay", headers=ADMIN,
                                 json={"keys": [parked["key"]]}, timeout=10)
        assert replayed.json() == {"replayed": 1}, replayed.text
        (got,) = wait_for(lambda: received(receiver), timeout=30, message="the replayed POST")
        assert got["verified"] and json.loads(got["body"])["subject"] == folio
        assert got["webhook-id"] == parked["key"]  # the same id on every attempt
    finally:
        if receiver is not None:
            receiver.stop()
        requests.delete(f"{stack.notifications.url}/webhooks/{hook['id']}", headers=SYSTEM,
                        timeout=10)
