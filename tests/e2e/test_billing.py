"""Billing over the real bus, on PostgreSQL, with the fake card gateway: a citizen pays next
year's predial online in time for the January discount and gets a receipt anyone can verify; a
declined or unanswered payment changes nothing, a callback sent twice pays once, and a payment
whose callback was lost is settled once by the reconciliation; the statement goes out by email;
two clerks take the same payment at the window at once and it lands once, a clerk of another
area is refused and a reversal gives the balance back; and a repaired pothole costs exactly the
materials its crew logged, however often the bus delivers the event."""

from __future__ import annotations

import html
import itertools
import json
import re
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qs, urlsplit

import eventlet
import kombu
import pytest
import requests

from services.billing.domainmodel import account_id
from tests.billingstack import CITY, NEXT_YEAR, BillingStack, bearer, clerk, pdf_text
from tests.support import wait_for

pytestmark = pytest.mark.e2e

CADASTRAL_VALUE = "850000.00"  # × 1.6 per mil: 1,360.00 a year; 15 % early discount: 204.00
LEVY, DISCOUNT, EARLY = Decimal("1360.00"), Decimal("204.00"), Decimal("1156.00")
KEYS = (f"14-001-{n:04d}-045" for n in itertools.count(100))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = BillingStack(tmp_path_factory.mktemp("billing")).start()
    yield running
    running.stop()


def predial(stack, check: str = "7391") -> tuple[str, str]:
    """A predial account opened and assessed for next year by a predial clerk: (key, check)."""
    key = next(KEYS)
    with stack.billing_rpc("billing_clerk", area="predial") as billing:
        billing.open_account({"kind": "predial", "key": key, "check": check,
                              "holder": "María López Hernández",
                              "description": "Av. Juárez 12, Centro",
                              "cadastral_value": CADASTRAL_VALUE})
        billing.assess_predial(key, NEXT_YEAR)
    return key, check


def checkout(stack, key: str, check: str, **more) -> dict:
    answer = requests.post(f"{stack.billing.url}/api/cuentas/predial/{key}/pago", timeout=20,
                           json={"check": check, **more})
    assert answer.status_code == 201, answer.text
    return answer.json()


def press(url: str, outcome: str) -> requests.Response:
    """The citizen presses a button of the gateway's page (Pagar, Rechazar, Sin respuesta)."""
    return requests.post(url, data={"outcome": outcome}, allow_redirects=False, timeout=30)


def payments_of(stack, key: str) -> list:
    return [row for row in stack.billing_events("PaymentReceived")
            if row[0] == str(account_id("predial", key))]


def test_a_citizen_pays_predial_online_with_the_january_discount_and_can_prove_it(stack):
    key, check = predial(stack)
    statement = stack.statement("predial", key, check)
    assert statement["totals"]["balance"] == str(LEVY)
    assert statement["to_pay"] == {"amount": str(EARLY), "discount": str(DISCOUNT),
                                   "until": f"{NEXT_YEAR}-01-31", "surcharges": "0.00"}
    wrong = requests.get(f"{stack.billing.url}/api/cuentas/predial/{key}",
                         params={"check": "0000"}, timeout=10)
    assert wrong.status_code == 404  # the key without its check value opens nothing
    page = requests.get(f"{stack.billing.url}/pagos/cuenta", timeout=10,
                        params={"kind": "predial", "key": key, "check": check})
    assert page.status_code == 200 and "1,156.00" in page.text and "204.00" in page.text

    started = checkout(stack, key, check)
    assert started["amount"] == str(EARLY)
    paid = press(started["url"], "success")
    assert paid.status_code == 303, paid.text
    back = paid.headers["Location"]
    assert back.startswith(f"{stack.billing.url}/pagos/retorno?")
    query = parse_qs(urlsplit(back).query)
    assert (query["reference"], query["status"]) == ([started["reference"]], ["approved"])
    page = requests.get(back, timeout=10)
    assert page.status_code == 200 and "Tu pago quedó registrado" in page.text
    link = re.search(r'href="([^"]+)">Descargar recibo', page.text)
    assert link, page.text

    after = stack.statement("predial", key, check)
    assert after["totals"]["balance"] == "0.00" and after["to_pay"]["amount"] == "0.00"
    assert [(line["kind"], line["amount"]) for line in after["lines"]] == [
        ("charge", str(LEVY)), ("discount", f"-{DISCOUNT}"), ("payment", f"-{EARLY}")]

    reference = started["reference"]
    receipt = requests.get(f"{stack.billing.url}/api/pagos/{reference}",
                           params={"check": check}, timeout=10).json()
    assert receipt["amount"] == str(EARLY) and receipt["channel"] == "online"
    assert receipt["balance_after"] == "0.00"
    receipt_url = html.unescape(link[1])
    assert receipt_url.startswith(f"/api/pagos/{reference}/recibo.pdf?")
    pdf = requests.get(f"{stack.billing.url}{receipt_url}", timeout=10)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    text = pdf_text(pdf.content)
    for expected in (reference, "1,156.00", "Descuento por pronto pago 15 %", "204.00",
                     receipt["verification"], key):
        assert expected in text, (expected, text)
    not_theirs = requests.get(f"{stack.billing.url}/api/pagos/{reference}/recibo.pdf",
                              params={"check": "0000"}, timeout=10)
    assert not_theirs.status_code == 404

    verify = f"{stack.billing.url}/verificar"
    valid = requests.get(verify, params={"documento": reference,
                                         "codigo": receipt["verification"]}, timeout=10)
    assert valid.status_code == 200 and "Documento válido" in valid.text
    assert "1156.00" in valid.text and key in valid.text
    forged = "AAAA-BBBB-CCCC-DDDD"
    assert forged != receipt["verification"]
    invalid = requests.get(verify, params={"documento": reference, "codigo": forged},
                           timeout=10)
    assert invalid.status_code == 200 and "no corresponde" in invalid.text
    assert "Documento válido" not in invalid.text


def test_a_declined_or_unanswered_payment_changes_nothing(stack):
    key, check = predial(stack)
    events = stack.billing_events()

    declined = checkout(stack, key, check)
    answer = press(declined["url"], "decline")
    assert answer.status_code == 303
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["status"] == ["declined"]
    page = requests.get(answer.headers["Location"], timeout=10)
    assert "El banco rechazó el pago" in page.text

    unanswered = checkout(stack, key, check)
    answer = press(unanswered["url"], "timeout")
    assert answer.status_code == 200 and "pendiente" in answer.text
    page = requests.get(f"{stack.billing.url}/pagos/retorno",
                        params={"reference": unanswered["reference"]}, timeout=10)
    assert "Estamos esperando la confirmación del banco" in page.text

    assert stack.balance("predial", key, check) == str(LEVY)
    assert stack.billing_events() == events  # not a single event stored
    status = dict(stack.query("billing", "SELECT reference, status FROM billing_checkouts "
                                         "WHERE key = ?", (key,)))
    assert status == {declined["reference"]: "declined", unanswered["reference"]: "pending"}
    # Asking the gateway settles nothing: one is declined, the other still pending there.
    settled = stack.rpc("reconcile_checkouts", 0)
    assert settled["applied"] == 0
    assert stack.billing_events() == events


def test_a_callback_sent_again_pays_once(stack):
    key, check = predial(stack)
    started = checkout(stack, key, check)
    assert press(started["url"], "success").status_code == 303
    assert len(payments_of(stack, key)) == 1
    gateway_id = stack.checkout_of(started["reference"])["id"]
    for _ in range(2):  # the gateway was not sure we heard it
        resent = requests.post(f"{stack.payments.url}/_callbacks/{gateway_id}/resend",
                               timeout=20)
        assert resent.status_code == 200 and resent.json() == {"delivered": True}
    deliveries = stack.checkout_of(started["reference"])["deliveries"]
    assert [d["delivered"] for d in deliveries] == [True, True, True]
    assert len(payments_of(stack, key)) == 1
    assert stack.balance("predial", key, check) == "0.00"


def test_a_payment_whose_callback_was_lost_is_settled_once_by_the_reconciliation(stack):
    key, check = predial(stack)
    started = checkout(stack, key, check)
    assert press(started["url"], "timeout").status_code == 200  # the bank did not answer…
    with stack.relay.losing_callbacks():  # …then approved it, and its word never reached us
        late = press(started["url"], "success")
    assert late.status_code == 303
    assert stack.checkout_of(started["reference"])["status"] == "approved"
    assert stack.checkout_of(started["reference"])["deliveries"][-1]["delivered"] is False
    assert payments_of(stack, key) == []
    assert stack.balance("predial", key, check) == str(LEVY)

    first = stack.rpc("reconcile_checkouts", 0)
    again = stack.rpc("reconcile_checkouts", 0)
    assert first["applied"] == 1 and again["applied"] == 0
    assert len(payments_of(stack, key)) == 1
    assert stack.balance("predial", key, check) == "0.00"
    # The lost callback arrives after all: answered as applied before, nothing paid twice.
    gateway_id = stack.checkout_of(started["reference"])["id"]
    resent = requests.post(f"{stack.payments.url}/_callbacks/{gateway_id}/resend", timeout=20)
    assert resent.json() == {"delivered": True}
    assert len(payments_of(stack, key)) == 1
    receipt = requests.get(f"{stack.billing.url}/api/pagos/{started['reference']}",
                           params={"check": check}, timeout=10).json()
    assert receipt["amount"] == str(EARLY) and receipt["channel"] == "online"


def test_the_citizen_gets_the_statement_by_email_with_its_pdf(stack):
    key, check = predial(stack)
    address = f"estado-{uuid.uuid4().hex[:8]}@example.com"
    answer = requests.post(f"{stack.billing.url}/api/cuentas/predial/{key}/envio", timeout=20,
                           json={"check": check, "channel": "email", "email": address})
    assert answer.status_code == 202, answer.text
    mails = wait_for(lambda: [m for m in stack.emails() if m["To"] == address], timeout=30,
                     message="the statement's email")
    eventlet.sleep(1)  # a second one would have come by now
    mails = [m for m in stack.emails() if m["To"] == address]
    assert len(mails) == 1
    [attachment] = list(mails[0].iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"estado-{key}.pdf"
    text = pdf_text(attachment.get_content())
    assert "Estado de cuenta" in text and key in text
    assert "1,360.00" in text and "1,156.00" in text  # the balance, and what settles it today


def test_two_clerks_take_the_same_payment_at_once_and_it_lands_once(stack):
    key, check = predial(stack)
    window = f"{stack.billing.url}/ventanilla"
    payment = {"reference": f"V3-{NEXT_YEAR}-{uuid.uuid4().hex[:6].upper()}",
               "amount": str(EARLY)}
    clerks = [clerk("predial"), {"Authorization": bearer("billing_clerk", area="predial")}]

    def take(headers: dict) -> requests.Response:
        return requests.post(f"{window}/predial/{key}/pagos", json=payment, headers=headers,
                             timeout=30)

    answers = list(eventlet.GreenPool(2).imap(take, clerks))
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    receipts = [a.json() for a in answers]
    assert sorted(r.pop("first_time") for r in receipts) == [False, True]
    assert receipts[0] == receipts[1]  # the same receipt, verification code included
    assert receipts[0]["reference"] == payment["reference"]
    assert len(payments_of(stack, key)) == 1
    assert stack.balance("predial", key, check) == "0.00"

    agua = clerk("agua")
    assert requests.get(f"{window}/predial/{key}", headers=agua, timeout=10).status_code == 403
    refused = requests.post(f"{window}/predial/{key}/pagos", headers=agua, timeout=10,
                            json={"reference": "V3-AGUA-1", "amount": "10.00"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    refused = requests.post(f"{window}/pagos/{payment['reference']}/cancelacion", headers=agua,
                            json={"reason": "cheque sin fondos"}, timeout=10)
    assert refused.status_code == 403
    assert stack.balance("predial", key, check) == "0.00"

    reversed_ = requests.post(f"{window}/pagos/{payment['reference']}/cancelacion",
                              headers=clerk("predial"), json={"reason": "cheque sin fondos"},
                              timeout=10)
    assert reversed_.status_code == 200, reversed_.text
    # The payment and the early discount it earned are both gone: the whole levy is owed.
    assert reversed_.json()["totals"]["balance"] == str(LEVY)
    assert stack.balance("predial", key, check) == str(LEVY)
    again = requests.post(f"{window}/pagos/{payment['reference']}/cancelacion",
                          headers=clerk("predial"), json={"reason": "otra vez"}, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_reversible"


# ---- the cost of a repair ----------------------------------------------------------------------

MATERIALS = {"MEZ-ASF": ("Mezcla asfáltica en frío", "m3", "1850.50"),
             "EMU-AS": ("Emulsión asfáltica", "litro", "37.33")}
USED = {"MEZ-ASF": "0.25", "EMU-AS": "3.5"}  # 462.625 → 462.63, 130.655 → 130.66


def field_step(stack, folio: str, name: str, opened: datetime, seconds: int, **more):
    answer = requests.post(f"{stack.crews.url}/field/reports/{folio}/steps", timeout=20,
                           headers={"Authorization": bearer("crew", crew_id="C-77")},
                           json={"step": name, "step_id": str(uuid.uuid4()),
                                 "occurred_at": (opened + timedelta(seconds=seconds)).isoformat(),
                                 **more})
    assert answer.status_code == 200, (name, answer.text)
    return answer.json()


def test_a_repaired_pothole_costs_what_its_crew_logged_to_the_centavo(stack):
    admin = {"Authorization": bearer("admin")}
    crew = requests.post(f"{stack.crews.url}/crews", headers=admin, timeout=10, json={
        "code": "C-77", "name": "Bacheo Norte", "department": "obras_publicas"})
    assert crew.status_code == 201, crew.text
    for code, (description, unit, cost) in MATERIALS.items():
        added = requests.post(f"{stack.crews.url}/materials", headers=admin, timeout=10, json={
            "code": code, "description": description, "unit": unit, "unit_cost": cost,
            "effective_at": "2026-01-01T00:00:00-06:00"})
        assert added.status_code == 201, added.text
    opened = datetime.now(CITY)
    folio = requests.post(f"{stack.tracking.url}/reports", timeout=10,
                          headers={"Authorization": bearer("operator")}, json={
                              "service_code": "bache", "service_name": "Bache",
                              "department": "obras_publicas", "channel": "phone_070",
                              "description": "Bache en la lateral",
                              "location": {"lat": 20.61, "long": -100.41}}).json()["folio"]
    requests.post(f"{stack.tracking.url}/reports/{folio}/assign", json={"crew_id": "C-77"},
                  headers={"Authorization": bearer("supervisor")},
                  timeout=10).raise_for_status()
    for n, name in enumerate(("dispatched", "en_route", "arrived"), 1):
        field_step(stack, folio, name, opened, n)
    logged = field_step(stack, folio, "materials", opened, 5,
                        items=[{"code": code, "quantity": q} for code, q in USED.items()])

    expected = {code: (Decimal(q) * Decimal(MATERIALS[code][2])).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP) for code, q in USED.items()}
    total = str(sum(expected.values()))
    assert total == "593.29"
    supervisor = {"Authorization": bearer("supervisor", department="obras_publicas")}
    url = f"{stack.billing.url}/costs/reports/{folio}"

    def costed():
        answer = requests.get(url, headers=supervisor, timeout=10)
        return answer.json() if answer.status_code == 200 and answer.json()["lines"] else None

    cost = wait_for(costed, timeout=30, message="the report's repair cost")
    assert cost["total"] == total and cost["unpriced"] == 0 and cost["crew_id"] == "C-77"
    assert {line["code"]: line["cost"] for line in cost["lines"]} == {
        code: str(amount) for code, amount in expected.items()}
    assert {line["code"]: line["unit_cost"] for line in cost["lines"]} == {
        code: MATERIALS[code][2] for code in USED}
    elsewhere = {"Authorization": bearer("supervisor", department="servicios_publicos")}
    assert requests.get(url, headers=elsewhere, timeout=10).status_code == 403
    by_crew = requests.get(f"{stack.billing.url}/costs", params={"by": "crew"},
                           headers=supervisor, timeout=10).json()
    assert {"key": "C-77", "reports": 1, "total": total} in by_crew["totals"]

    # The bus delivers the report's events again; a later step comes behind them.
    events = requests.get(f"{stack.tracking.url}/reports/{folio}/events", timeout=10,
                          headers={"Authorization": bearer("admin")}).json()["events"]
    assert any(e["type"].endswith("materials_logged") for e in events)
    with kombu.Connection(stack.amqp_uri) as conn:
        producer = conn.Producer()
        for event in events:
            producer.publish(json.dumps(event), exchange="expediente.events",
                             routing_key=event["type"], retry=True,
                             content_type="application/cloudevents+json")
    done = field_step(stack, folio, "work_completed", opened, 6, notes="Bache rellenado")
    assert done["version"] > logged["version"]
    position = "SELECT version FROM stream_positions WHERE subject = ?"
    wait_for(lambda: stack.query("billing", position, (folio,)) == [(done["version"],)],
             timeout=30, message="billing heard the step after the redelivered events")
    assert requests.get(url, headers=supervisor, timeout=10).json() == cost
    lines = stack.query("billing", "SELECT COUNT(*) FROM repair_cost_lines WHERE folio = ?",
                        (folio,))
    assert lines == [(len(USED),)]
