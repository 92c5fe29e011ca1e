"""Two notifications replicas on PostgreSQL share one delivery log: under a stream of steps, one
replica is killed (SIGKILL) mid-flight and every message still arrives, once per (event,
subscriber, channel); and billing's documents go out through the same log, attachment and all."""

from __future__ import annotations

import base64
import uuid

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from shared.chassis.auth import mint_token
from tests.e2e.test_notifications import SUPERVISOR, emails_to, phone_messages, report
from tests.notifystack import NotificationsStack
from tests.support import ServiceProcess, wait_for

pytestmark = pytest.mark.e2e

REPORTS = 12
STEPS = (("assign", {"crew_id": "C-01"}), ("dispatch_crew", {}), ("arrive", {}),
         ("complete_work", {"notes": "Listo"}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = NotificationsStack(tmp_path_factory.mktemp("notify2"), notify_env={
        "DELIVERY_LEASE_SECONDS": "2", "DELIVERY_CONCURRENCY": "4"}).start()
    second = ServiceProcess("notifications", {  # the same settings, a port of its own
        key: value for key, value in running.notifications.env.items()
        if key != "NOTIFICATIONS_HTTP_ADDRESS"})
    try:
        running.second = second.start()
        yield running
    finally:
        second.stop()
        running.stop()


def test_a_replica_killed_mid_flight_loses_and_repeats_no_message(stack):
    stack.provider_mode(delay=0.3)  # messages in flight on both replicas when one dies
    folios = [report(stack, {"email": f"vecina{n}@example.com", "phone": f"+52 442 600 {n:04d}",
                             "notify_by": ["email", "sms"]})["folio"] for n in range(REPORTS)]
    for number, (name, body) in enumerate(STEPS):
        for folio in folios:
            answer = requests.post(f"{stack.tracking.url}/reports/{folio}/{name}", json=body,
                                   headers=SUPERVISOR, timeout=20)
            assert answer.status_code == 200, answer.text
        if number == 1:
            wait_for(lambda: any(row["status"] == "sending"
                                 for row in stack.deliveries(channel="sms")),
                     timeout=30, message="SMS in flight")
            stack.notifications.kill9()
    stack.provider_mode(reset=True)
    expected = REPORTS * (1 + len(STEPS)) * 2  # opened and each step, by email and by SMS
    wait_for(lambda: sum(row["status"] == "sent" for row in stack.deliveries()) >= expected,
             timeout=120, message=f"{expected} deliveries sent by the surviving replica")
    rows = stack.deliveries()
    assert len(rows) == expected and {row["status"] for row in rows} == {"sent"}
    for n, folio in enumerate(folios):
        mails = emails_to(stack, f"vecina{n}@example.com")
        # SMTP has no idempotency key: a resend after the kill carries the same Message-ID.
        assert len({m["Message-ID"] for m in mails}) == 1 + len(STEPS), folio
        sms = phone_messages(stack, "sms", f"+524426{n:06d}")
        assert len(sms) == 1 + len(STEPS), folio  # the provider took each key once


def test_a_document_from_billing_goes_out_once_with_its_pdf(stack):
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    document = {"reference": f"receipt:{uuid.uuid4()}", "channel": "email",
                "email": "pago@example.com", "subject": "Recibo de pago predial",
                "text": "Adjuntamos tu recibo.", "filename": "recibo-2027.pdf",
                "data": base64.b64encode(pdf).decode()}
    token = mint_token("e2e-billing", ("system",))
    config = {"AMQP_URI": stack.amqp_uri}
    with ClusterRpcProxy(config, context_data={"authorization": f"Bearer {token}"},
                         timeout=30) as rpc:
        first = rpc.notifications.send_document(document)
        again = rpc.notifications.send_document(document)  # billing retried its call
        whatsapp = rpc.notifications.send_document({
            **document, "channel": "whatsapp", "phone": "+52 442 700 0001"})
    assert again["key"] == first["key"] != whatsapp["key"]
    (mail,) = wait_for(lambda: emails_to(stack, "pago@example.com"), timeout=30,
                       message="the receipt by email")
    (attached,) = list(mail.iter_attachments())
    assert attached.get_filename() == "recibo-2027.pdf"
    assert attached.get_content() == pdf
    (sent,) = wait_for(lambda: phone_messages(stack, "whatsapp", "+524427000001"), timeout=30,
                       message="the receipt by WhatsApp")
    assert base64.b64decode(sent["body"]["document"]["data"]) == pdf
    # Sent: the PDFs and the addresses they went to are not kept.
    wait_for(lambda: stack.query("notifications", "SELECT count(*) FROM documents") == [(0,)],
             timeout=30, message="the documents let go")
