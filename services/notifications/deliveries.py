"""Notifications' tables: subscriptions (the only personal data of the system), the report events
seen, municipal systems' webhooks, and the delivery log.

The delivery log holds one row per (event, subscription or webhook, channel): its key. A row is
written by the consumer, in the transaction that claims the event, as the decision to send; the
sender then takes due rows one at a time under a lease, hands each to its channel, and records the
outcome and the attempt. A redelivered event finds its rows there and adds none; a crash between a
provider's answer and its record leaves the row leased, and once the lease runs out it is sent
again with the same key (deduplicated by a provider that takes an idempotency key; for email, the
same Message-ID, see mail.py).

Times are stored as ISO 8601 text in UTC, which sorts as it reads."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

TABLES = {
    "subscriptions": """CREATE TABLE IF NOT EXISTS subscriptions (
        id TEXT PRIMARY KEY, folio TEXT NOT NULL, channel TEXT NOT NULL, address TEXT,
        language TEXT NOT NULL, steps TEXT, role TEXT NOT NULL, status TEXT NOT NULL,
        access_token TEXT, created_at TEXT NOT NULL, confirmed_at TEXT, ended_at TEXT)""",
    "subscriptions_address": """CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_address
        ON subscriptions (folio, channel, address)""",
    "seen_events": """CREATE TABLE IF NOT EXISTS seen_events (
        event_id TEXT PRIMARY KEY, folio TEXT NOT NULL, version INTEGER NOT NULL,
        type TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL)""",
    "seen_events_folio": """CREATE INDEX IF NOT EXISTS seen_events_folio
        ON seen_events (folio, version)""",
    "report_scope": """CREATE TABLE IF NOT EXISTS report_scope (
        folio TEXT PRIMARY KEY, department TEXT NOT NULL)""",
    "webhooks": """CREATE TABLE IF NOT EXISTS webhooks (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, url TEXT NOT NULL, types TEXT NOT NULL,
        departments TEXT NOT NULL, secrets TEXT NOT NULL, status TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "deliveries": """CREATE TABLE IF NOT EXISTS deliveries (
        key TEXT PRIMARY KEY, event_id TEXT, folio TEXT, subscription_id TEXT, webhook_id TEXT,
        channel TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL, next_attempt_at TEXT NOT NULL, lease_until TEXT,
        provider_id TEXT, detail TEXT NOT NULL, event_time TEXT, created_at TEXT NOT NULL,
        settled_at TEXT)""",
    "deliveries_due": """CREATE INDEX IF NOT EXISTS deliveries_due
        ON deliveries (status, next_attempt_at)""",
    "deliveries_subscription": """CREATE INDEX IF NOT EXISTS deliveries_subscription
        ON deliveries (subscription_id)""",
    "deliveries_webhook": """CREATE INDEX IF NOT EXISTS deliveries_webhook
        ON deliveries (webhook_id, created_at)""",
    "delivery_attempts": """CREATE TABLE IF NOT EXISTS delivery_attempts (
        key TEXT NOT NULL, attempt INTEGER NOT NULL, at TEXT NOT NULL, status TEXT NOT NULL,
        detail TEXT NOT NULL, PRIMARY KEY (key, attempt))""",
    "documents": """CREATE TABLE IF NOT EXISTS documents (
        key TEXT PRIMARY KEY, address TEXT, language TEXT NOT NULL, subject TEXT NOT NULL,
        text TEXT NOT NULL, filename TEXT NOT NULL, content_type TEXT NOT NULL,
        data TEXT NOT NULL)""",
    "erasures": """CREATE TABLE IF NOT EXISTS erasures (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, criterion TEXT NOT NULL,
        subscriptions INTEGER NOT NULL)""",
}

OPEN = ("pending", "sending")  # a delivery still to be settled
SETTLED = ("sent", "rejected", "parked", "cancelled")
CHANNELS = ("email", "sms", "whatsapp", "push", "webhook")


def prepare(store: SqlStore) -> None:
    create_missing(store, TABLES)


def now() -> datetime:
    return datetime.now(UTC)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def delivery_key(*parts: str) -> str:
    """The delivery's key: the same for the same (event, recipient, channel) on every replica
    and every attempt; what providers deduplicate by."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


# ---- subscriptions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    id: str
    folio: str
    channel: str
    address: str | None
    language: str
    steps: tuple[str, ...] | None  # None: every step
    role: str  # reporter (the folio's own citizen) or follower (confirms first)
    status: str  # pending (unconfirmed), active, opted_out, ended
    access_token: str | None

    def wants(self, step: str) -> bool:
        return self.status == "active" and (self.steps is None or step in self.steps)


SUBSCRIPTION_COLUMNS = ("id, folio, channel, address, language, steps, role, status, "
                        "access_token")


def _subscription(row: Sequence[Any]) -> Subscription:
    steps = json.loads(row[5]) if row[5] else None
    return Subscription(row[0], row[1], row[2], row[3], row[4],
                        tuple(steps) if steps is not None else None, row[6], row[7], row[8])


def subscribe(tx: Tx, folio: str, channel: str, address: str, *, language: str = "es",
              steps: Iterable[str] | None = None, role: str = "reporter",
              access_token: str | None = None) -> tuple[Subscription, bool]:
    """The subscription of this address to this folio on this channel, and whether it is new.
    A repeat (the same request delivered twice, a citizen following twice) changes nothing."""
    # The reporter holds the folio's access token, and a browser's push subscription names
    # only that browser: both are told at once. Anyone else confirms the address first.
    status = "pending" if role == "follower" else "active"
    subscription_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO subscriptions (id, folio, channel, address, language, steps, role, status, "
        "access_token, created_at, confirmed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s) ON CONFLICT (folio, channel, address) DO NOTHING",
        (subscription_id, folio, channel, address, language,
         json.dumps(sorted(steps)) if steps is not None else None, role, status, access_token,
         stamp(now()), stamp(now()) if status == "active" else None))
    created = tx.rowcount == 1
    tx.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE folio = %s AND "
               "channel = %s AND address = %s", (folio, channel, address))
    row = tx.fetchone()
    assert row is not None
    return _subscription(row), created


def subscription(tx: Tx, subscription_id: str) -> Subscription | None:
    tx.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = %s",
               (subscription_id,))
    row = tx.fetchone()
    return _subscription(row) if row else None


def subscription_and_event(tx: Tx, subscription_id: str, event_id: str
                           ) -> tuple[Subscription | None, dict[str, Any] | None]:
    """A delivery's subscription and the event it tells of, in one round trip."""
    columns = ", ".join(f"s.{name.strip()}" for name in SUBSCRIPTION_COLUMNS.split(","))
    tx.execute(f"SELECT {columns}, e.body FROM subscriptions s LEFT JOIN seen_events e "
               f"ON e.event_id = %s WHERE s.id = %s", (event_id, subscription_id))
    row = tx.fetchone()
    if row is None:
        return None, None
    return _subscription(row[:-1]), json.loads(row[-1]) if row[-1] else None


def of_folio(tx: Tx, folio: str) -> list[Subscription]:
    tx.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE folio = %s AND "
               "status = 'active' ORDER BY created_at", (folio,))
    return [_subscription(row) for row in tx.fetchall()]


def confirm(tx: Tx, subscription_id: str) -> Subscription | None:
    """A follower's address confirmed: from now on it is told of each step."""
    tx.execute("UPDATE subscriptions SET status = 'active', confirmed_at = %s "
               "WHERE id = %s AND status = 'pending'", (stamp(now()), subscription_id))
    return subscription(tx, subscription_id)


def end(tx: Tx, subscription_id: str, status: str = "opted_out") -> bool:
    """Opt-out (or a browser's push subscription gone): no more messages, the address forgotten,
    anything still to be sent to it cancelled."""
    tx.execute("UPDATE subscriptions SET status = %s, address = NULL, access_token = NULL, "
               "ended_at = %s WHERE id = %s AND status IN ('pending', 'active')",
               (status, stamp(now()), subscription_id))
    ended = tx.rowcount == 1
    _forget_deliveries(tx, [subscription_id])
    return ended


def _forget_deliveries(tx: Tx, subscription_ids: Sequence[str]) -> None:
    """Cancel what is still to be sent to these subscriptions, and drop what a provider said
    about them (its answer may quote the address)."""
    for subscription_id in subscription_ids:
        tx.execute("UPDATE deliveries SET status = 'cancelled', settled_at = %s, detail = '' "
                   "WHERE subscription_id = %s AND status IN ('pending', 'sending')",
                   (stamp(now()), subscription_id))
        tx.execute("UPDATE deliveries SET detail = '' WHERE subscription_id = %s",
                   (subscription_id,))
        tx.execute("UPDATE delivery_attempts SET detail = '' WHERE key IN "
                   "(SELECT key FROM deliveries WHERE subscription_id = %s)", (subscription_id,))


def erase(tx: Tx, criterion: str, value: str, addresses: Sequence[str], actor: str) -> int:
    """Erase every subscription of a folio, or of an address (in each way it may have been
    written: `addresses`), recording that it happened, by whom and by which kind of criterion,
    never the value. Documents waiting for that address go too."""
    if criterion == "folio":
        tx.execute("SELECT id FROM subscriptions WHERE folio = %s", (value,))
    else:
        marks = ", ".join(["%s"] * len(addresses))
        tx.execute(f"SELECT id FROM subscriptions WHERE address IN ({marks})", tuple(addresses))
    ids = [row[0] for row in tx.fetchall()]
    _forget_deliveries(tx, ids)
    for subscription_id in ids:
        tx.execute("DELETE FROM subscriptions WHERE id = %s", (subscription_id,))
    if criterion != "folio" and addresses:
        marks = ", ".join(["%s"] * len(addresses))
        tx.execute(f"SELECT key FROM documents WHERE address IN ({marks})", tuple(addresses))
        keys = [row[0] for row in tx.fetchall()]
        for key in keys:
            tx.execute("UPDATE deliveries SET status = 'cancelled', settled_at = %s "
                       "WHERE key = %s AND status IN ('pending', 'sending')",
                       (stamp(now()), key))
            # A parked one keeps its row: what its provider said may quote the address.
            tx.execute("UPDATE deliveries SET detail = '' WHERE key = %s", (key,))
            tx.execute("DELETE FROM documents WHERE key = %s", (key,))
            tx.execute("UPDATE delivery_attempts SET detail = '' WHERE key = %s", (key,))
        # A document already sent kept no address; what its provider answered may quote it.
        for address in addresses:
            pattern_ = "%" + address.replace("%", "").replace("_", "") + "%"
            tx.execute("UPDATE deliveries SET detail = '' WHERE purpose = 'document' AND "
                       "detail LIKE %s", (pattern_,))
            tx.execute("UPDATE delivery_attempts SET detail = '' WHERE detail LIKE %s AND key "
                       "IN (SELECT key FROM deliveries WHERE purpose = 'document')", (pattern_,))
    tx.execute("INSERT INTO erasures (id, at, actor, criterion, subscriptions) "
               "VALUES (%s, %s, %s, %s, %s)",
               (str(uuid.uuid4()), stamp(now()), actor, criterion, len(ids)))
    return len(ids)


# ---- report events ----------------------------------------------------------------------------


def remember(tx: Tx, event_id: str, folio: str, version: int, type_: str, time: str,
             body: str) -> None:
    tx.execute("INSERT INTO seen_events (event_id, folio, version, type, time, body) "
               "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
               (event_id, folio, version, type_, time, body))


def seen(tx: Tx, folio: str, types: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The folio's events seen so far (as published), of these types, in stream order."""
    if types is None:
        tx.execute("SELECT body FROM seen_events WHERE folio = %s ORDER BY version", (folio,))
    elif not types:
        return []
    else:
        tx.execute(f"SELECT body FROM seen_events WHERE folio = %s AND type IN "
                   f"({', '.join(['%s'] * len(types))}) ORDER BY version", (folio, *types))
    return [json.loads(body) for (body,) in tx.fetchall()]


def seen_event(tx: Tx, event_id: str) -> dict[str, Any] | None:
    tx.execute("SELECT body FROM seen_events WHERE event_id = %s", (event_id,))
    row = tx.fetchone()
    return json.loads(row[0]) if row else None


def set_department(tx: Tx, folio: str, department: str) -> None:
    tx.execute("INSERT INTO report_scope (folio, department) VALUES (%s, %s) "
               "ON CONFLICT (folio) DO UPDATE SET department = excluded.department",
               (folio, department))


def department(tx: Tx, folio: str) -> str | None:
    tx.execute("SELECT department FROM report_scope WHERE folio = %s", (folio,))
    row = tx.fetchone()
    return row[0] if row else None


# ---- the delivery log -------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A delivery taken to be sent now (its lease held)."""

    key: str
    event_id: str | None
    folio: str | None
    subscription_id: str | None
    webhook_id: str | None
    channel: str
    purpose: str
    attempts: int  # counting this one
    event_time: str | None


DUE_COLUMNS = ("key, event_id, folio, subscription_id, webhook_id, channel, purpose, attempts, "
               "event_time")


def schedule(tx: Tx, key: str, channel: str, purpose: str, *, not_before: datetime,
             event_id: str | None = None, folio: str | None = None,
             subscription_id: str | None = None, webhook_id: str | None = None,
             event_time: str | None = None, detail: str = "") -> bool:
    """The decision to send, once per key; False if it was already taken."""
    tx.execute(
        "INSERT INTO deliveries (key, event_id, folio, subscription_id, webhook_id, channel, "
        "purpose, status, attempts, next_attempt_at, detail, event_time, created_at) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s, %s, %s) "
        "ON CONFLICT (key) DO NOTHING",
        (key, event_id, folio, subscription_id, webhook_id, channel, purpose, stamp(not_before),
         detail, event_time, stamp(now())))
    return tx.rowcount == 1


def take_due(store: SqlStore, limit: int, lease: timedelta) -> list[Due]:
    """Lease up to `limit` deliveries that are due (or whose sender's lease ran out: it died
    mid-send), counting the attempt; replicas never take the same row."""
    at = now()
    skip = " FOR UPDATE SKIP LOCKED" if store.dialect == "postgres" else ""
    # A recipient's next message waits while the one before it is on its way: the citizen reads
    # "en camino" before "llegó" (within a batch, the sender keeps each recipient's order). A
    # webhook gets each report's events in order, different reports' side by side.
    rows, _ = store.run(
        f"UPDATE deliveries SET status = 'sending', lease_until = %s, attempts = attempts + 1 "
        f"WHERE key IN (SELECT d.key FROM deliveries d WHERE ((d.status = 'pending' AND "
        f"d.next_attempt_at <= %s) OR (d.status = 'sending' AND d.lease_until < %s)) AND NOT "
        f"EXISTS (SELECT 1 FROM deliveries s WHERE s.status = 'sending' AND s.lease_until >= %s "
        f"AND s.channel = d.channel AND (s.subscription_id = d.subscription_id OR "
        f"(s.webhook_id = d.webhook_id AND s.folio = d.folio))) "
        f"ORDER BY d.next_attempt_at LIMIT %s{skip}) "
        f"RETURNING {DUE_COLUMNS}",
        (stamp(at + lease), stamp(at), stamp(at), stamp(at), limit))
    return sorted((Due(*row) for row in rows), key=lambda due: (due.folio or "", due.event_time
                                                                or ""))


def next_due(store: SqlStore) -> datetime | None:
    """When the next pending delivery falls due (None: nothing pending)."""
    rows, _ = store.run("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'")
    if not rows or rows[0][0] is None:
        return None
    return datetime.fromisoformat(rows[0][0])


def record(tx: Tx, due: Due, status: str, detail: str, *, provider_id: str | None = None,
           retry_at: datetime | None = None) -> bool:
    """The outcome of one attempt: `status` is sent, rejected, parked, cancelled, or pending
    again (with `retry_at`). False if the lease was lost meanwhile (another sender took it after
    it ran out): that sender records instead."""
    detail = detail[:1000]
    at = now()
    tx.execute("INSERT INTO delivery_attempts (key, attempt, at, status, detail) "
               "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key, attempt) DO NOTHING",
               (due.key, due.attempts, stamp(at), "retry" if status == "pending" else status,
                detail))
    if status == "pending":
        tx.execute("UPDATE deliveries SET status = 'pending', lease_until = NULL, detail = %s, "
                   "next_attempt_at = %s WHERE key = %s AND status = 'sending' AND attempts = %s",
                   (detail, stamp(retry_at or at), due.key, due.attempts))
    else:
        tx.execute("UPDATE deliveries SET status = %s, lease_until = NULL, detail = %s, "
                   "provider_id = %s, settled_at = %s WHERE key = %s AND status = 'sending' "
                   "AND attempts = %s",
                   (status, detail, provider_id, stamp(at), due.key, due.attempts))
    return tx.rowcount == 1


def replay(tx: Tx, keys: Sequence[str] | None = None, channel: str | None = None) -> int:
    """Parked deliveries back to pending, with a fresh round of attempts (all, or these keys, or
    this channel's)."""
    sql = ("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = %s, "
           "settled_at = NULL WHERE status = 'parked'")
    params: list[Any] = [stamp(now())]
    if keys is not None:
        sql += f" AND key IN ({', '.join(['%s'] * len(keys))})" if keys else " AND 1 = 0"
        params += list(keys)
    if channel is not None:
        sql += " AND channel = %s"
        params.append(channel)
    tx.execute(sql, params)
    return tx.rowcount


DELIVERY_COLUMNS = ("key, event_id, folio, subscription_id, webhook_id, channel, purpose, "
                    "status, attempts, next_attempt_at, provider_id, detail, event_time, "
                    "created_at, settled_at")


def listing(store: SqlStore, *, status: str | None = None, channel: str | None = None,
            webhook_id: str | None = None, folio: str | None = None, key: str | None = None,
            limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Deliveries for the operator, newest first, each with its attempts."""
    where, params = [], []
    for column, value in (("status", status), ("channel", channel), ("webhook_id", webhook_id),
                          ("folio", folio), ("key", key)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows, _ = store.run(f"{sql} ORDER BY created_at DESC, key LIMIT %s OFFSET %s",
                        (*params, limit, offset))
    names = [name.strip() for name in DELIVERY_COLUMNS.split(",")]
    found = [dict(zip(names, row, strict=True)) for row in rows]
    if found:
        marks = ", ".join(["%s"] * len(found))
        attempts, _ = store.run(
            f"SELECT key, attempt, at, status, detail FROM delivery_attempts WHERE key IN "
            f"({marks}) ORDER BY key, attempt", [row["key"] for row in found])
        by_key: dict[str, list[dict[str, Any]]] = {}
        for k, attempt, at, status_, detail in attempts:
            by_key.setdefault(k, []).append(
                {"attempt": attempt, "at": at, "status": status_, "detail": detail})
        for row in found:
            row["attempts_made"] = by_key.get(row["key"], [])
    return found


def depth(store: SqlStore) -> dict[tuple[str, str], int]:
    """Open deliveries by (channel, status): the queue the sender works through."""
    rows, _ = store.run("SELECT channel, status, COUNT(*) FROM deliveries WHERE status IN "
                        "('pending', 'sending', 'parked') GROUP BY channel, status")
    return {(channel, status): count for channel, status, count in rows}
