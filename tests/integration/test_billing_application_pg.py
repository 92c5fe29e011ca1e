"""Billing on PostgreSQL, the store production uses: a house's predial paid, sent twice and
bounced; two clerks entering the same receipt at once; twenty payments landing on one account
together; and a holder's name as hostile as a form can send it."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import eventlet
import pytest

from services.billing import accountview
from services.billing.application import AccountNotFound, BillingApplication
from services.billing.domainmodel import NotReversible, ReferenceReused, account_id, reference_id

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

D = Decimal
CITY = ZoneInfo("America/Mexico_City")
CASA = "14-001-0123-045"
VALUE = "850000.00"  # 1360.00 a year at 1.6 per mil
SECRET, PUBLIC_URL = b"secreto-de-prueba", "https://pagos.example.gob.mx"


def at(year: int, month: int, day: int, hour: int = 11) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CITY)


@pytest.fixture
def app(pg_env):
    application = BillingApplication(env=pg_env)
    yield application
    application.close()


@pytest.fixture
def second_window(pg_env, app):
    """Another replica of billing on the same schema: a second clerk's window."""
    application = BillingApplication(env=pg_env)
    yield application
    application.close()


def open_house(app: BillingApplication, key: str = CASA, holder: str = "María López Hernández",
               description: str = "Av. Juárez 12, Centro"):
    app.open_account("predial", key, "7391", holder, description, {"cadastral_value": VALUE},
                     date(2026, 1, 2), "admin")
    return app.assess_predial(key, 2026, date(2026, 1, 2))


def topics(app: BillingApplication, originator) -> list[str]:
    return [event.topic.rsplit(".", 1)[-1] for event in app.recorder.select_events(originator)]


def test_a_house_pays_its_predial_on_postgres_once_and_a_bounce_undoes_it(app, pg_env):
    account = open_house(app)
    assert account.balance == D("1360.00")
    account = app.grant_discount("predial", CASA, "adulto_mayor", date(2026, 1, 20), "cajera-3")
    assert app.quote(account, date(2026, 1, 31)).total == D("578.00")  # 680 less 15 %
    first = app.pay("predial", CASA, "SPEI-1", D("578.00"), "bank", at(2026, 1, 31, 23))
    again = app.pay("predial", CASA, "SPEI-1", D("578.00"), "bank", at(2026, 2, 1))
    assert first.first_time and not again.first_time and again.account.balance == 0
    receipt, repeated = (accountview.receipt(a, SECRET, PUBLIC_URL) for a in (first, again))
    assert {**repeated, "first_time": True} == receipt
    with pytest.raises(ReferenceReused):
        app.pay("predial", CASA, "SPEI-1", D("1.00"), "bank", at(2026, 2, 1))
    account = app.reverse("SPEI-1", "devolución del banco", date(2026, 2, 3), "cajera-3")
    assert account.balance == D("680.00")  # the clerk's discount stays; the early one goes
    with pytest.raises(NotReversible):
        app.reverse("SPEI-1", "otra vez", date(2026, 2, 3), "cajera-3")
    for _ in range(2):
        app.issue_statement("predial", CASA, "2026-02", date(2026, 2, 3))
    reloaded = BillingApplication(env=pg_env)
    try:
        account = reloaded.look_up("predial", CASA, "7391")
        assert account.balance == D("680.00") and account.lines == app.account(
            "predial", CASA).lines
        assert topics(reloaded, account.id).count("StatementIssued") == 1
        with pytest.raises(AccountNotFound, match="no account with that key and check value"):
            reloaded.look_up("predial", CASA, "0000")
    finally:
        reloaded.close()
    for event in app.recorder.select_events(account_id("predial", CASA)):
        json.loads(event.state, parse_float=lambda text: pytest.fail(f"a float: {text}"))


def test_two_clerks_entering_the_same_receipt_at_once_apply_it_once(app, second_window):
    open_house(app)
    windows = [app, second_window] * 4
    pool = eventlet.GreenPool(len(windows))
    applied = list(pool.imap(
        lambda window: window.pay("predial", CASA, "V1-2026-000123", D("1156.00"), "window",
                                  at(2026, 1, 15), by="cajera-3"), windows))
    assert sum(a.first_time for a in applied) == 1
    assert {a.account.balance for a in applied} == {D("0.00")}
    assert topics(app, account_id("predial", CASA)).count("PaymentReceived") == 1
    assert len(app.recorder.select_events(reference_id("V1-2026-000123"))) == 1


def test_twenty_payments_landing_together_on_one_account_all_count(app, second_window):
    app.open_account("predial", CASA, "7391", "Condominio Las Flores", "Calle Morelos 8",
                     {"cadastral_value": "9000000.00"}, date(2026, 4, 2), "admin")
    app.assess_predial(CASA, 2026, date(2026, 4, 2))  # 14400.00, late from the start
    pool = eventlet.GreenPool(20)
    applied = list(pool.imap(
        lambda n: (app, second_window)[n % 2].pay("predial", CASA, f"B-{n:03d}", D("100.01"),
                                                  "bank", at(2026, 4, 3)), range(20)))
    assert all(a.first_time for a in applied)
    account = app.account("predial", CASA)
    assert sorted(account.payments) == [f"B-{n:03d}" for n in range(20)]
    surcharge = D("162.72")  # one month: 1.13 % of 14400.00, applied once whoever came first
    assert account.balance == D("14400.00") + surcharge - 20 * D("100.01") == D("12562.52")
    assert topics(app, account.id).count("SurchargeApplied") == 1


@pytest.mark.parametrize("holder", ["María\x00López", "Ma" * 50_000, "'); DROP TABLE x; --"])
def test_a_hostile_holder_is_stored_as_text_and_read_back_exactly(app, pg_env, holder):
    """The application itself does not judge a holder's name (the HTTP schemas refuse control
    characters): whatever it is given goes into the event's JSON, escaped, and comes back."""
    open_house(app, holder=holder, description="\x00" + "ñ" * 10_000)
    reloaded = BillingApplication(env=pg_env)
    try:
        account = reloaded.account("predial", CASA)
        assert account.holder == holder and account.description == "\x00" + "ñ" * 10_000
        assert account.balance == D("1360.00")
    finally:
        reloaded.close()
