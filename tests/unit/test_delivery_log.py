"""The delivery log on SQLite, as the consumer, the doors and the sender use it: one subscription
per folio, channel and address; one delivery per key, leased to one sender at a time and recorded
once; parked deliveries sent again on an operator's word; an opt-out or an erasure that leaves the
citizen's address in no table at all. Also who the consumer decides to tell of which step, the
city's quiet hours, the signed links of every message, and what the sender makes of each
channel's answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.notifications import deliveries as log_
from services.notifications import hooks, routing
from services.notifications.channels import Delivery, Outcome, rejected, retry, sent
from services.notifications.links import BadLink, Links
from services.notifications.messages import NOTIFIED
from services.notifications.phones import BadPhone, phone
from services.notifications.sender import Notices, after_quiet, quiet_hours
from services.notifications.webhooks import WebhookSender
from services.notifications.webpush import EXPIRED
from shared.chassis.sqlstore import SqliteStore, SqlStore
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import CATALOG, event_type

CITY = ZoneInfo("America/Mexico_City")  # UTC-6 all year since 2022: no DST to step over
FOLIO = "QRO-2026-000123"
OTHER_FOLIO = "QRO-2026-000777"
ANA = "ana.lopez@example.com"
ANA_TYPED = "+52 442 123 4567"
ANA_PHONE = "+524421234567"
LUIS = "luis.perez@example.com"
TOKEN = "tok-ana-7f3a"
LEASE = timedelta(seconds=60)
TINY_LEASE = timedelta(milliseconds=250)
BEFORE = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
SECRET = "links-secret-for-tests"


@pytest.fixture
def store(tmp_path) -> Iterator[SqlStore]:
    sql = SqliteStore(str(tmp_path / "n.db"))
    log_.prepare(sql)
    yield sql
    sql.close()


def subscribed(store: SqlStore, address: str = ANA, channel: str = "email",
               role: str = "reporter", folio: str = FOLIO, **options: Any
               ) -> tuple[log_.Subscription, bool]:
    with store.transaction() as tx:
        return log_.subscribe(tx, folio, channel, address, role=role, **options)


def scheduled(store: SqlStore, key: str, channel: str = "email", purpose: str = "step",
              at: datetime | None = None, **options: Any) -> bool:
    with store.transaction() as tx:
        return log_.schedule(tx, key, channel, purpose,
                             not_before=at or log_.now() - timedelta(hours=1), **options)


def recorded(store: SqlStore, due: log_.Due, status: str, detail: str = "", **options: Any
             ) -> bool:
    with store.transaction() as tx:
        return log_.record(tx, due, status, detail, **options)


def delivery(store: SqlStore, key: str) -> dict[str, Any]:
    """The delivery as the operator sees it, with its attempts."""
    found = log_.listing(store, key=key)
    assert len(found) == 1, key
    return found[0]


def count(store: SqlStore, table: str) -> int:
    rows, _ = store.run(f"SELECT COUNT(*) FROM {table}")
    return int(rows[0][0])


def everything(store: SqlStore) -> str:
    """Every row of every table, as text (lower case): what an erasure must leave no trace in."""
    tables, _ = store.run("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert {name for (name,) in tables} >= {"subscriptions", "deliveries", "delivery_attempts",
                                            "documents", "erasures", "seen_events"}
    text = []
    for (table,) in tables:
        rows, _ = store.run(f"SELECT * FROM {table}")
        text += [f"{table}: {row!r}" for row in rows]
    return "\n".join(text).lower()


def report_event(name: str, version: int, folio: str = FOLIO, **data: Any) -> CloudEvent:
    """One of the folio's events as tracking publishes it."""
    return CloudEvent(id=f"{folio}:{version}", source="/expediente/tracking",
                      type=event_type(name), subject=folio,
                      time=BEFORE + timedelta(minutes=version),
                      data={"folio": folio, "version": version, "step_id": None,
                            "actor": {"id": "luis", "role": "supervisor", "channel": "staff"},
                            **data})


# ---- subscriptions ------------------------------------------------------------------------


def test_a_citizen_who_asks_twice_has_one_subscription_as_first_made(store):
    first, created = subscribed(store, access_token=TOKEN)
    again, created_again = subscribed(store, role="follower", language="en")

    assert created and not created_again
    assert again == first
    assert (first.role, first.status, first.language) == ("reporter", "active", "es")
    assert count(store, "subscriptions") == 1


@pytest.mark.parametrize(("role", "status"), [
    ("follower", "pending"),  # anyone who types a folio: the address confirms first
    ("reporter", "active"),   # holds the folio's access token
    ("browser", "active"),    # a push subscription names only the browser that made it
])
def test_only_a_follower_waits_for_the_address_to_be_confirmed(store, role, status):
    subscription, _ = subscribed(store, role=role)

    assert subscription.status == status
    assert subscription.wants("closed") == (status == "active")


def test_a_confirmed_follower_is_told_of_each_step_from_then_on(store):
    follower, _ = subscribed(store, role="follower")
    with store.transaction() as tx:
        confirmed = log_.confirm(tx, follower.id)
        of_folio = log_.of_folio(tx, FOLIO)

    assert confirmed is not None and confirmed.status == "active"
    assert of_folio == [confirmed]


# ---- the delivery log ---------------------------------------------------------------------


def test_the_decision_to_send_is_taken_once_per_key(store):
    key = log_.delivery_key("event-1", "subscription-1", "email")

    assert scheduled(store, key)
    assert not scheduled(store, key, channel="sms", purpose="confirm")
    assert count(store, "deliveries") == 1
    assert (delivery(store, key)["channel"], delivery(store, key)["status"]) == ("email",
                                                                                 "pending")


def test_the_key_is_the_same_for_the_same_recipient_and_event_and_differs_otherwise():
    key = log_.delivery_key("event-1", "subscription-1", "email")

    assert key == log_.delivery_key("event-1", "subscription-1", "email")
    assert key != log_.delivery_key("event-1", "subscription-1", "sms")
    assert key != log_.delivery_key("event-1", "subscription-", "1email")


def test_a_delivery_not_yet_due_is_not_taken(store):
    scheduled(store, "later", at=log_.now() + timedelta(hours=1))

    assert log_.take_due(store, 10, LEASE) == []
    assert delivery(store, "later")["status"] == "pending"


def test_a_leased_delivery_is_taken_by_no_one_else_until_its_lease_runs_out(store):
    scheduled(store, "k1")

    first = log_.take_due(store, 10, TINY_LEASE)
    meanwhile = log_.take_due(store, 10, TINY_LEASE)
    time.sleep(TINY_LEASE.total_seconds() * 4)
    after_the_lease = log_.take_due(store, 10, TINY_LEASE)

    assert [(due.key, due.attempts) for due in first] == [("k1", 1)]
    assert meanwhile == []
    assert [(due.key, due.attempts) for due in after_the_lease] == [("k1", 2)]


def test_a_sender_that_lost_its_lease_records_nothing_and_the_one_that_took_over_does(store):
    scheduled(store, "k1")
    [slow] = log_.take_due(store, 10, TINY_LEASE)
    time.sleep(TINY_LEASE.total_seconds() * 4)
    [taken_over] = log_.take_due(store, 10, LEASE)

    assert not recorded(store, slow, "rejected", "550 too late")
    assert delivery(store, "k1")["status"] == "sending"
    assert recorded(store, taken_over, "sent", "250 ok", provider_id="msg-9")
    assert (delivery(store, "k1")["status"], delivery(store, "k1")["provider_id"],
            delivery(store, "k1")["attempts"]) == ("sent", "msg-9", 2)


def test_a_retried_delivery_comes_back_when_its_retry_falls_due_and_not_before(store):
    scheduled(store, "k1")
    [due] = log_.take_due(store, 10, LEASE)
    retry_at = log_.now() + timedelta(milliseconds=200)

    assert recorded(store, due, "pending", "451 try again later", retry_at=retry_at)
    assert log_.take_due(store, 10, LEASE) == []
    assert log_.next_due(store) == retry_at
    time.sleep(0.3)
    [again] = log_.take_due(store, 10, LEASE)

    assert (again.key, again.attempts) == ("k1", 2)
    attempts = delivery(store, "k1")["attempts_made"]
    assert [(a["attempt"], a["status"], a["detail"]) for a in attempts] == [
        (1, "retry", "451 try again later")]


def test_nothing_pending_has_no_next_due(store):
    scheduled(store, "k1")
    [due] = log_.take_due(store, 10, LEASE)
    recorded(store, due, "sent")

    assert log_.next_due(store) is None


def parked(store: SqlStore, *channels: str) -> list[str]:
    """One delivery per channel, each parked after its last attempt; and one email sent."""
    keys = [f"{channel}-{n}" for n, channel in enumerate(channels)]
    for key, channel in zip(keys, channels, strict=True):
        scheduled(store, key, channel=channel)
    scheduled(store, "sent-email", channel="email")
    for due in log_.take_due(store, 100, LEASE):
        recorded(store, due, "sent" if due.key == "sent-email" else "parked", "gave up")
    return keys


@pytest.mark.parametrize(("options", "replayed"), [
    ({}, ["email-0", "sms-1", "webhook-2"]),
    ({"keys": ["sms-1", "webhook-2", "sent-email", "no-such-key"]}, ["sms-1", "webhook-2"]),
    ({"channel": "webhook"}, ["webhook-2"]),
    ({"keys": ["email-0", "sms-1"], "channel": "sms"}, ["sms-1"]),
    ({"keys": []}, []),  # an empty list names no delivery: it is not "all"
])
def test_an_operator_replays_parked_deliveries_all_or_by_key_or_by_channel(store, options,
                                                                           replayed):
    keys = parked(store, "email", "sms", "webhook")
    with store.transaction() as tx:
        answer = log_.replay(tx, **options)

    assert answer == len(replayed)
    for key in keys:
        found = delivery(store, key)
        if key in replayed:
            assert (found["status"], found["attempts"], found["settled_at"]) == ("pending", 0,
                                                                                 None)
        else:
            assert found["status"] == "parked"
    assert delivery(store, "sent-email")["status"] == "sent"
    assert sorted(due.key for due in log_.take_due(store, 100, LEASE)) == sorted(replayed)


def test_an_opt_out_cancels_what_is_still_to_be_sent_and_forgets_the_address(store):
    ana, _ = subscribed(store, access_token=TOKEN)
    luis, _ = subscribed(store, address=LUIS)
    for n, whom in enumerate((ana, ana, ana, luis)):
        scheduled(store, f"k{n}", subscription_id=whom.id, folio=FOLIO)
    taken = {due.key: due for due in log_.take_due(store, 10, LEASE)}
    recorded(store, taken["k0"], "sent", f"250 accepted for <{ANA}>")
    recorded(store, taken["k1"], "pending", f"451 mailbox of {ANA} busy",
             retry_at=log_.now() + timedelta(minutes=5))
    # k2 is being sent (its lease held), k3 is Luis's

    with store.transaction() as tx:
        ended = log_.end(tx, ana.id)
        ended_again = log_.end(tx, ana.id)
        gone = log_.subscription(tx, ana.id)

    assert ended and not ended_again
    assert gone is not None and (gone.status, gone.address, gone.access_token) == (
        "opted_out", None, None)
    assert [delivery(store, key)["status"] for key in ("k0", "k1", "k2", "k3")] == [
        "sent", "cancelled", "cancelled", "sending"]
    assert ANA not in everything(store) and TOKEN.lower() not in everything(store)
    assert LUIS in everything(store)
    with store.transaction() as tx:
        assert [s.address for s in log_.of_folio(tx, FOLIO)] == [LUIS]


# ---- what the sender makes of each channel's answer ----------------------------------------


class FakeChannel:
    """A channel whose provider answers as the test says; it keeps what it was handed."""

    def __init__(self, name: str, answer: Callable[[Delivery], Outcome]) -> None:
        self.name = name
        self.answer = answer
        self.handed: list[Delivery] = []

    def send(self, delivery: Delivery) -> Outcome:
        self.handed.append(delivery)
        return self.answer(delivery)


def answering(outcome: Outcome) -> Callable[[Delivery], Outcome]:
    return lambda delivery: outcome


LINKS = Links(SECRET, "https://avisos.example.gob.mx", "https://seguimiento.example.gob.mx/s")


def notices_of(store: SqlStore, *channels: FakeChannel, **config: Any) -> Notices:
    return Notices(store, {channel.name: channel for channel in channels},
                   WebhookSender(timeout=1, allow_http=False, allow_private=False), LINKS,
                   {"QUIET_HOURS": "", **config}, wake=lambda: None)


def told_of_opening(store: SqlStore, notices: Notices, folio: str = FOLIO) -> int:
    """The folio's opening reaches the consumer: a delivery to each of its subscriptions."""
    with store.transaction() as tx:
        return routing.decide(tx, report_event("opened", 1, folio=folio,
                                               department="obras_publicas",
                                               service_name="Bache"), notices)


def test_a_step_the_provider_took_is_sent_with_its_id_and_the_opt_out_link(store):
    email = FakeChannel("email", answering(sent("msg-1", "accepted by smtp:25")))
    notices = notices_of(store, email)
    ana, _ = subscribed(store, access_token=TOKEN)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(due) == "sent"
    found = delivery(store, due.key)
    assert (found["status"], found["provider_id"], found["detail"]) == (
        "sent", "msg-1", "accepted by smtp:25")
    assert [(a["attempt"], a["status"]) for a in found["attempts_made"]] == [(1, "sent")]
    [handed] = email.handed
    assert (handed.key, handed.address, handed.purpose) == (due.key, ANA, "step")
    assert FOLIO in handed.message.subject and TOKEN in handed.message.text
    assert handed.unsubscribe_url is not None
    token = handed.unsubscribe_url.rsplit("/", 1)[1]
    assert LINKS.subscription_of("opt-out", token) == ana.id


def test_a_step_the_provider_refuses_for_good_is_rejected_and_not_tried_again(store):
    notices = notices_of(store, FakeChannel("email", answering(rejected("550 no such user"))))
    subscribed(store)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(due) == "rejected"
    assert delivery(store, due.key)["status"] == "rejected"
    assert log_.next_due(store) is None


def test_a_step_the_provider_may_take_later_is_due_again_after_a_backoff_then_parked(store):
    email = FakeChannel("email", answering(retry("451 greylisted")))
    notices = notices_of(store, email, DELIVERY_MAX_ATTEMPTS=2, DELIVERY_BACKOFF_SECONDS=0.001)
    subscribed(store)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)
    first_due_at = delivery(store, due.key)["next_attempt_at"]

    assert notices.deliver(due) == "pending"
    again = delivery(store, due.key)
    assert (again["status"], again["attempts"], again["detail"]) == ("pending", 1,
                                                                     "451 greylisted")
    assert again["next_attempt_at"] > first_due_at
    time.sleep(0.05)
    [last] = log_.take_due(store, 10, LEASE)

    assert last.attempts == 2
    assert notices.deliver(last) == "parked"
    found = delivery(store, due.key)
    assert found["status"] == "parked"
    assert [(a["attempt"], a["status"]) for a in found["attempts_made"]] == [
        (1, "retry"), (2, "parked")]
    assert len(email.handed) == 2 and log_.next_due(store) is None


def test_a_channel_this_deployment_lacks_means_waiting_not_losing_the_message(store):
    notices = notices_of(store)  # no channel at all
    subscribed(store)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(due) == "pending"
    assert "not configured" in delivery(store, due.key)["detail"]


def test_a_parked_step_replayed_after_the_citizen_opted_out_is_cancelled_unsent(store):
    email = FakeChannel("email", answering(retry("451 greylisted")))
    notices = notices_of(store, email, DELIVERY_MAX_ATTEMPTS=1)
    ana, _ = subscribed(store)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)
    assert notices.deliver(due) == "parked"
    with store.transaction() as tx:
        log_.end(tx, ana.id)
        assert log_.replay(tx) == 1
    [replayed] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(replayed) == "cancelled"
    assert len(email.handed) == 1  # the first attempt only
    assert delivery(store, due.key)["status"] == "cancelled"


def test_a_step_being_sent_when_the_citizen_opts_out_is_cancelled_unsent(store):
    email = FakeChannel("email", answering(sent("msg-1")))
    notices = notices_of(store, email)
    ana, _ = subscribed(store)
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)
    with store.transaction() as tx:
        log_.end(tx, ana.id)

    notices.deliver(due)

    assert email.handed == []
    assert delivery(store, due.key)["status"] == "cancelled"


BROWSER = '{"endpoint": "https://push.example/abc", "keys": {"auth": "x", "p256dh": "y"}}'


@pytest.mark.parametrize(("channel", "address", "detail", "ended"), [
    ("push", BROWSER, f"{EXPIRED}: 410 Gone", True),
    ("push", BROWSER, "400 the payload is malformed", False),
    ("email", ANA, f"{EXPIRED}: said a strange mail server", False),
])
def test_a_browser_whose_push_subscription_expired_is_forgotten(store, channel, address,
                                                                 detail, ended):
    notices = notices_of(store, FakeChannel(channel, answering(rejected(detail))))
    browser, _ = subscribed(store, address=address, channel=channel, role="browser")
    told_of_opening(store, notices)
    [due] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(due) == "rejected"
    with store.transaction() as tx:
        after = log_.subscription(tx, browser.id)
    assert after is not None
    if ended:
        assert (after.status, after.address) == ("ended", None)
    else:
        assert (after.status, after.address) == ("active", address)


def billed(store: SqlStore, key: str, channel: str, address: str,
           at: datetime | None = None) -> None:
    """A document billing sends, as send_document writes it."""
    with store.transaction() as tx:
        log_.schedule(tx, key, channel, "document",
                      not_before=at or log_.now() - timedelta(seconds=1))
        tx.execute("INSERT INTO documents (key, address, language, subject, text, filename, "
                   "content_type, data) VALUES (%s, %s, 'es', 'Su recibo', 'Adjunto su recibo', "
                   "'recibo.pdf', 'application/pdf', %s)", (key, address, "JVBERi0xLjQK"))


def test_a_document_once_sent_is_no_longer_kept(store):
    email = FakeChannel("email", answering(sent("msg-7")))
    notices = notices_of(store, email)
    billed(store, "receipt-1", "email", ANA)
    [due] = log_.take_due(store, 10, LEASE)

    assert notices.deliver(due) == "sent"
    [handed] = email.handed
    assert handed.attachment is not None and handed.attachment.data == b"%PDF-1.4\n"
    assert (handed.address, handed.purpose) == (ANA, "document")
    assert count(store, "documents") == 0


# ---- erasure ------------------------------------------------------------------------------


def quoting(outcome: Callable[[str], Outcome]) -> Callable[[Delivery], Outcome]:
    """A provider that quotes the address in its answer, as mail servers do."""
    return lambda delivery: outcome(f"5.1.1 <{delivery.address}>: not now, maybe never")


def ana_and_luis(store: SqlStore) -> None:
    """Ana follows FOLIO by email and OTHER_FOLIO by SMS; Luis follows OTHER_FOLIO by email. A
    step was attempted to each, the providers' answers quoting the address: the emails parked,
    Ana's then replayed (it waits again), the SMS rejected. Billing's documents for Ana's email
    and phone were parked the same way, and others for her and Luis are not due yet."""
    channels = [FakeChannel("email", quoting(retry)), FakeChannel("sms", quoting(rejected)),
                FakeChannel("whatsapp", quoting(retry))]
    notices = notices_of(store, *channels, DELIVERY_MAX_ATTEMPTS=1)
    ana, _ = subscribed(store, access_token=TOKEN)
    subscribed(store, address=ANA_PHONE, channel="sms", folio=OTHER_FOLIO)
    subscribed(store, address=LUIS, folio=OTHER_FOLIO)
    told_of_opening(store, notices)
    told_of_opening(store, notices, OTHER_FOLIO)
    billed(store, "parked-email", "email", ANA)
    billed(store, "parked-whatsapp", "whatsapp", ANA_PHONE)
    billed(store, "later-email", "email", ANA, at=log_.now() + timedelta(hours=1))
    billed(store, "later-whatsapp", "whatsapp", ANA_PHONE, at=log_.now() + timedelta(hours=1))
    billed(store, "later-luis", "email", LUIS, at=log_.now() + timedelta(hours=1))
    for due in log_.take_due(store, 100, LEASE):
        notices.deliver(due)
    [step_to_ana] = [d["key"] for d in log_.listing(store, status="parked", channel="email")
                     if d["subscription_id"] == ana.id]
    with store.transaction() as tx:
        assert log_.replay(tx, keys=[step_to_ana]) == 1


def erasure_of(store: SqlStore) -> list[tuple]:
    rows, _ = store.run("SELECT actor, criterion, subscriptions FROM erasures")
    return rows


@pytest.mark.parametrize(("criterion", "value", "addresses", "traces", "kept"), [
    ("email", ANA, [ANA], [ANA], [ANA_PHONE]),
    ("phone", ANA_TYPED, [ANA_PHONE, ANA_TYPED], [ANA_PHONE, ANA_TYPED, "4421234567"], [ANA]),
])
def test_an_erasure_by_address_leaves_it_in_no_column_of_any_table(store, criterion, value,
                                                                   addresses, traces, kept):
    ana_and_luis(store)
    assert traces[0].lower() in everything(store)  # what the erasure has to remove

    with store.transaction() as tx:
        erased = log_.erase(tx, criterion, value, addresses, "admin-maria")

    assert erased == 1
    left = everything(store)
    for trace in traces:
        assert trace.lower() not in left, trace
    for other in (*kept, LUIS):
        assert other.lower() in left  # her other address, and Luis, are not touched
    assert erasure_of(store) == [("admin-maria", criterion, 1)]
    orphans, _ = store.run("SELECT status FROM deliveries WHERE subscription_id IS NOT NULL "
                           "AND subscription_id NOT IN (SELECT id FROM subscriptions)")
    assert orphans and not [status for (status,) in orphans if status in log_.OPEN]
    rows, _ = store.run("SELECT status FROM deliveries WHERE purpose = 'document' AND "
                        "key LIKE %s", (f"later-{'email' if criterion == 'email' else 'wh'}%",))
    assert rows == [("cancelled",)]
    assert log_.listing(store, key="later-luis")[0]["status"] == "pending"


def test_an_erasure_by_folio_ends_every_subscription_of_it_and_records_no_folio(store):
    ana_and_luis(store)

    with store.transaction() as tx:
        erased = log_.erase(tx, "folio", FOLIO, [], "admin-maria")

    assert erased == 1
    rows, _ = store.run("SELECT folio, address FROM subscriptions ORDER BY address")
    assert rows == [(OTHER_FOLIO, ANA_PHONE), (OTHER_FOLIO, LUIS)]
    rows, _ = store.run("SELECT status, detail FROM deliveries WHERE folio = %s AND "
                        "subscription_id IS NOT NULL", (FOLIO,))
    assert rows == [("cancelled", "")]
    rows, _ = store.run("SELECT * FROM erasures")
    assert FOLIO.lower() not in repr(rows).lower()
    assert erasure_of(store) == [("admin-maria", "folio", 1)]
    # Her email followed only this folio: it is gone from the subscriptions and their log
    # (billing's documents for it are not the folio's, and stay).
    found, _ = store.run("SELECT * FROM subscriptions")
    steps, _ = store.run("SELECT * FROM deliveries WHERE subscription_id IS NOT NULL")
    attempts, _ = store.run("SELECT * FROM delivery_attempts WHERE key IN (SELECT key FROM "
                            "deliveries WHERE subscription_id IS NOT NULL)")
    assert ANA not in repr((found, steps, attempts)).lower()


def test_an_erasure_by_email_leaves_no_trace_of_a_document_already_rejected(store):
    notices = notices_of(store, FakeChannel("email", quoting(rejected)))
    billed(store, "receipt-1", "email", ANA)
    [due] = log_.take_due(store, 10, LEASE)
    assert notices.deliver(due) == "rejected"

    with store.transaction() as tx:
        log_.erase(tx, "email", ANA, [ANA], "admin-maria")

    assert ANA not in everything(store)


# ---- the consumer's decisions -------------------------------------------------------------


class FakeNotices:
    """What routing needs of the sender: when a channel may send, and a wake-up to count."""

    def __init__(self) -> None:
        self.at = datetime(2031, 1, 2, 14, 0, tzinfo=UTC)  # "not before" for every channel
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1

    def not_before(self, channel: str, at: datetime | None = None) -> datetime:
        return self.at


def normal_phone(text: str) -> str | None:
    try:
        return phone(text)
    except BadPhone:
        return None


def request(folio: str = FOLIO, access_token: str | None = TOKEN, **contact: Any
            ) -> dict[str, Any]:
    """A subscription request from intake, as SubscriptionRequestSchema loads it."""
    return {"folio": folio, "access_token": access_token, "channel": "web",
            "requested_at": BEFORE,
            "contact": {"email": ANA, "phone": None, "notify_by": [], **contact}}


def decided(store: SqlStore, notices: FakeNotices, *events: CloudEvent) -> int:
    with store.transaction() as tx:
        return sum(routing.decide(tx, event, notices) for event in events)  # type: ignore[arg-type]


def taken(store: SqlStore, notices: FakeNotices, what: dict[str, Any]) -> int:
    with store.transaction() as tx:
        return routing.take_request(tx, what, notices, normal_phone)  # type: ignore[arg-type]


def decisions(store: SqlStore) -> list[tuple]:
    rows, _ = store.run("SELECT channel, purpose, event_id, next_attempt_at FROM deliveries "
                        "WHERE webhook_id IS NULL ORDER BY channel, event_id")
    return rows


SO_FAR = (report_event("opened", 1, department="obras_publicas"),
          report_event("triaged", 2, department="obras_publicas", priority="high"),
          report_event("comment_added", 3, text="nota", visibility="internal"),
          report_event("assigned", 4, crew_id="C-07"))


def test_the_reporter_is_told_at_once_of_every_step_already_seen_on_each_channel(store):
    notices = FakeNotices()
    decided(store, notices, *SO_FAR)

    made = taken(store, notices, request(phone=ANA_TYPED, notify_by=["email", "sms"]))

    at = log_.stamp(notices.at)
    assert made == 4
    assert decisions(store) == [("email", "step", f"{FOLIO}:1", at),
                                ("email", "step", f"{FOLIO}:4", at),
                                ("sms", "step", f"{FOLIO}:1", at),
                                ("sms", "step", f"{FOLIO}:4", at)]
    rows, _ = store.run("SELECT channel, address, role, status, access_token FROM subscriptions "
                        "ORDER BY channel")
    assert rows == [("email", ANA, "reporter", "active", TOKEN),
                    ("sms", ANA_PHONE, "reporter", "active", TOKEN)]
    assert notices.woken == 1


def test_the_same_request_delivered_twice_decides_nothing_more(store):
    notices = FakeNotices()
    decided(store, notices, *SO_FAR)
    taken(store, notices, request())

    assert taken(store, notices, request()) == 0
    assert len(decisions(store)) == 2 and notices.woken == 1


def test_a_follower_gets_only_a_confirmation_until_confirming_then_each_new_step(store):
    notices = FakeNotices()
    decided(store, notices, *SO_FAR)

    assert taken(store, notices, request(access_token=None)) == 1
    assert [(channel, purpose, event) for channel, purpose, event, _ in decisions(store)] == [
        ("email", "confirm", None)]
    assert decided(store, notices, report_event("crew_dispatched", 5)) == 0
    rows, _ = store.run("SELECT id FROM subscriptions")
    with store.transaction() as tx:
        follower = routing.confirmed(tx, rows[0][0])
    assert follower is not None and (follower.role, follower.status) == ("follower", "active")

    assert decided(store, notices, report_event("crew_arrived", 6)) == 1
    assert [(purpose, event) for _, purpose, event, _ in decisions(store)] == [
        ("confirm", None), ("step", f"{FOLIO}:6")]


def test_a_contact_without_a_chosen_channel_is_told_by_email_else_by_sms(store):
    notices = FakeNotices()
    taken(store, notices, request(folio=FOLIO, phone=ANA_TYPED))
    taken(store, notices, request(folio=OTHER_FOLIO, email=None, phone=ANA_TYPED))
    taken(store, notices, request(folio="QRO-2026-000999", email=None, phone="no es teléfono"))

    rows, _ = store.run("SELECT folio, channel, address FROM subscriptions ORDER BY folio")
    assert rows == [(FOLIO, "email", ANA), (OTHER_FOLIO, "sms", ANA_PHONE)]


@pytest.mark.parametrize("step", list(CATALOG))
def test_a_subscription_is_told_of_the_public_steps_and_of_no_other(store, step):
    notices = FakeNotices()
    subscribed(store)

    made = decided(store, notices, report_event(step, 1))

    told = step in NOTIFIED
    assert made == int(told) and len(decisions(store)) == int(told)
    assert notices.woken == int(told)
    assert count(store, "seen_events") == 1  # remembered either way


def test_a_subscription_to_some_steps_is_told_of_those_only(store):
    notices = FakeNotices()
    subscribed(store, steps=["closed"])

    decided(store, notices, report_event("opened", 1), report_event("closed", 2))

    assert [event for _, _, event, _ in decisions(store)] == [f"{FOLIO}:2"]


def test_webhooks_get_the_event_types_and_departments_they_asked_for(store):
    notices = FakeNotices()
    with store.transaction() as tx:
        ids = {name: hooks.register(tx, "system-sig", "https://sig.example/hook", types,
                                    departments)["id"]
               for name, types, departments in (
                   ("everything", [], []),
                   ("closures", ["mx.expediente.report.closed"], []),
                   ("roads", [], ["obras_publicas"]),
                   ("lights", [], ["alumbrado"]))}
    names = {hook_id: name for name, hook_id in ids.items()}

    def hooked(event: CloudEvent) -> list[str]:
        decided(store, notices, event)
        rows, _ = store.run("SELECT webhook_id FROM deliveries WHERE event_id = %s AND "
                            "channel = 'webhook'", (event.id,))
        return sorted(names[hook_id] for (hook_id,) in rows)

    assert hooked(report_event("opened", 1, department="obras_publicas")) == [
        "everything", "roads"]
    assert hooked(report_event("closed", 2, resolution="fixed")) == [
        "closures", "everything", "roads"]
    # triaged to another department: from that event on, it is that department's report
    assert hooked(report_event("triaged", 3, department="alumbrado")) == [
        "everything", "lights"]
    assert hooked(report_event("closed", 4, resolution="fixed")) == [
        "closures", "everything", "lights"]
    # a folio whose department is not known here: only hooks for every department
    assert hooked(report_event("closed", 1, folio=OTHER_FOLIO)) == ["closures", "everything"]


# ---- quiet hours --------------------------------------------------------------------------


def city(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=CITY)


NIGHT = quiet_hours("22:00-08:00")
LUNCH = quiet_hours("13:00-15:00")


@pytest.mark.parametrize(("quiet", "at", "channel", "sent_at"), [
    (NIGHT, city(10, 23, 30), "sms", city(11, 8)),
    (NIGHT, city(10, 22, 0), "whatsapp", city(11, 8)),
    (NIGHT, city(11, 0, 0), "sms", city(11, 8)),
    (NIGHT, city(11, 7, 59, 59), "sms", city(11, 8)),
    (NIGHT, city(11, 8, 0), "sms", city(11, 8)),          # 08:00 is morning already
    (NIGHT, city(10, 21, 59, 59), "sms", city(10, 21, 59, 59)),
    (NIGHT, city(10, 12, 0), "whatsapp", city(10, 12, 0)),
    (NIGHT, city(10, 23, 30), "email", city(10, 23, 30)),  # email and push wait for no one
    (NIGHT, city(10, 23, 30), "push", city(10, 23, 30)),
    (LUNCH, city(10, 13, 0), "sms", city(10, 15)),
    (LUNCH, city(10, 14, 59), "sms", city(10, 15)),
    (LUNCH, city(10, 15, 0), "sms", city(10, 15)),
    (LUNCH, city(10, 12, 59), "sms", city(10, 12, 59)),
    (LUNCH, city(10, 23, 30), "sms", city(10, 23, 30)),
    (LUNCH, city(10, 14, 0), "email", city(10, 14, 0)),
    (None, city(10, 23, 30), "sms", city(10, 23, 30)),
])
def test_sms_and_whatsapp_due_in_the_quiet_hours_wait_for_their_end(quiet, at, channel,
                                                                     sent_at):
    assert after_quiet(at, channel, quiet, CITY) == sent_at
    assert after_quiet(at.astimezone(UTC), channel, quiet, CITY) == sent_at  # UTC in, too


def test_quiet_hours_read_like_22_00_08_00_or_are_none():
    assert quiet_hours(" 22:00 - 08:00 ") == (dtime(22, 0), dtime(8, 0))
    assert quiet_hours("") is None and quiet_hours("  ") is None
    for text in ("10pm-8am", "22:00", "22:00-08:00-09:00", "25:00-08:00"):
        with pytest.raises(ValueError, match="22:00-08:00"):
            quiet_hours(text)


def test_the_notices_defer_by_the_city_s_clock(store):
    notices = Notices(store, {}, WebhookSender(1, False, False), LINKS,
                      {"QUIET_HOURS": "22:00-08:00", "TIMEZONE": "America/Mexico_City"},
                      wake=lambda: None)
    late = datetime(2026, 3, 11, 5, 0, tzinfo=UTC)  # 23:00 in the city

    assert notices.not_before("sms", late) == city(11, 8)
    assert notices.not_before("email", late) == late


# ---- signed links -------------------------------------------------------------------------

SUBSCRIPTION = "0b5e4a8c-1f2d-4c3b-9a7e-6d5c4b3a2f10"


@pytest.mark.parametrize("purpose", ["confirm", "opt-out"])
def test_a_link_names_the_subscription_it_was_signed_for(purpose):
    token = LINKS.token(purpose, SUBSCRIPTION)

    assert LINKS.subscription_of(purpose, token) == SUBSCRIPTION


def forged() -> list[tuple[str, str]]:
    good = LINKS.token("confirm", SUBSCRIPTION)
    ident, mac = good.split(".")
    other = "1" + SUBSCRIPTION[1:]
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    return [
        ("confirm", f"{ident}.{flipped}"),                        # a changed signature
        ("confirm", f"{other}.{mac}"),                             # another subscription
        ("opt-out", good),                                         # signed for confirming
        ("confirm", Links("another-secret", "https://a.b", "https://c.d").token(
            "confirm", SUBSCRIPTION)),                             # not our secret
        ("confirm", good.upper()),
        ("confirm", good + "\n"),
        ("confirm", good[:-1]),
        ("confirm", ""),
        ("confirm", "garbage"),
        ("confirm", "\x00" * 69),
        ("confirm", "\ud800"),
        ("confirm", "a" * 10_000),
    ]


@pytest.mark.parametrize(("purpose", "token"), forged())
def test_a_link_this_service_did_not_sign_for_that_purpose_is_refused(purpose, token):
    with pytest.raises(BadLink):
        LINKS.subscription_of(purpose, token)


def test_links_need_a_secret_and_carry_their_token_in_the_url():
    with pytest.raises(ValueError, match="LINK_SECRET"):
        Links("", "https://a.b", "https://c.d")

    assert LINKS.confirm_url(SUBSCRIPTION) == (
        f"https://avisos.example.gob.mx/confirmar/{LINKS.token('confirm', SUBSCRIPTION)}")
    assert LINKS.status_url(FOLIO, "a b&c") == (
        f"https://seguimiento.example.gob.mx/s/{FOLIO}?token=a%20b%26c")


def test_a_citizen_s_language_and_chosen_steps_are_kept_and_followed(store):
    notices = FakeNotices()
    with store.transaction() as tx:
        routing.take_request(tx, request(language="en", steps=["crew_arrived", "closed"]),
                             notices, normal_phone)  # type: ignore[arg-type]
        (subscription,) = log_.of_folio(tx, FOLIO)
    assert (subscription.language, subscription.steps) == ("en", ("closed", "crew_arrived"))
    assert decided(store, notices, report_event("opened", 1), report_event("assigned", 2),
                   report_event("crew_arrived", 3)) == 1  # only the step chosen
