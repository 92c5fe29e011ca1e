"""Billing's read models, kept by a log follower: the accounts a statement batch walks and the
payments collected by concept and channel.

The statement itself is read from the account's stream (a handful of events, snapshotted). The
rows here come from the events alone, never from loading an account, so the follower keeps up
with a bank file's thousands of payments: `Opened` adds an account, `PaymentReceived` a payment,
`PaymentReversed` marks it; every other event is passed over without being decoded. Each insert
is keyed, so a replayed or rebuilt batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

from .domainmodel import ZERO, Account

ACCOUNT_TOPIC = f"{Account.__module__}:{Account.__qualname__}"
OPENED, PAID, REVERSED = (f"{ACCOUNT_TOPIC}.{name}" for name in (
    "Opened", "PaymentReceived", "PaymentReversed"))
DDL = {
    "billing_account_index": "CREATE TABLE IF NOT EXISTS billing_account_index ("
    " account_id TEXT PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL)",
    "billing_account_index_key": "CREATE UNIQUE INDEX IF NOT EXISTS billing_account_index_key"
    " ON billing_account_index (kind, key)",
    "billing_payment_index": "CREATE TABLE IF NOT EXISTS billing_payment_index ("
    " reference TEXT PRIMARY KEY, account_id TEXT NOT NULL, channel TEXT NOT NULL,"
    " amount TEXT NOT NULL, paid_on TEXT NOT NULL, reversed INTEGER NOT NULL)",
    "billing_payment_index_day": "CREATE INDEX IF NOT EXISTS billing_payment_index_day"
    " ON billing_payment_index (paid_on)",
}


class BillingProjector(Handler):
    """Keeps `billing_account_index` and `billing_payment_index` up to date with the log."""

    def __init__(self, app: Any, store: SqlStore | None = None, name: str = "billing",
                 **options: Any) -> None:
        self.app = app
        self.store = store or app.sql
        create_missing(self.store, DDL)
        self.follower = (LogFollower(name, app, self, store=self.store, **options)
                         if app is not None else None)

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        for notification in notifications:
            if notification.topic not in (OPENED, PAID, REVERSED):
                continue
            event = self.app.mapper.to_domain_event(notification)
            account_id = str(notification.originator_id)
            if notification.topic == OPENED:
                tx.execute("INSERT INTO billing_account_index (account_id, kind, key) VALUES "
                           "(%s, %s, %s) ON CONFLICT (account_id) DO NOTHING",
                           (account_id, event.kind, event.key))
            elif notification.topic == PAID:
                tx.execute("INSERT INTO billing_payment_index (reference, account_id, channel,"
                           " amount, paid_on, reversed) VALUES (%s, %s, %s, %s, %s, 0) "
                           "ON CONFLICT (reference) DO NOTHING",
                           (event.reference, account_id, event.channel, str(event.amount),
                            event.paid_at.date().isoformat()))
            else:
                tx.execute("UPDATE billing_payment_index SET reversed = 1 WHERE reference = %s",
                           (event.reference,))

    # ---- reading ---------------------------------------------------------------------------------

    def accounts(self, kind: str | None, after: tuple[str, str] | None, limit: int
                 ) -> list[tuple[str, str]]:
        """(kind, key) of the accounts after `after`, in order: a statement batch's slice."""
        where, params = [], []
        if kind:
            where.append("kind = %s")
            params.append(kind)
        if after:
            where.append("(kind > %s OR (kind = %s AND key > %s))")
            params += [after[0], after[0], after[1]]
        rows = self.store.run(
            "SELECT kind, key FROM billing_account_index"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY kind, key LIMIT %s", (*params, limit))[0]
        return [(row[0], row[1]) for row in rows]

    def count(self, kind: str | None) -> int:
        rows = self.store.run("SELECT COUNT(*) FROM billing_account_index"
                              + (" WHERE kind = %s" if kind else ""),
                              (kind,) if kind else ())[0]
        return int(rows[0][0])

    def collected(self, since: str, until: str) -> list[dict[str, Any]]:
        """Payments (not reversed) by concept and channel between two days, inclusive."""
        rows = self.store.run("SELECT a.kind, p.channel, p.amount FROM billing_payment_index p "
                              "JOIN billing_account_index a ON a.account_id = p.account_id "
                              "WHERE p.paid_on >= %s AND p.paid_on <= %s AND p.reversed = 0",
                              (since, until))[0]
        totals: dict[tuple[str, str], list[Any]] = {}
        for kind, channel, amount in rows:  # summed as exact decimals, on either database
            entry = totals.setdefault((kind, channel), [0, ZERO])
            entry[0] += 1
            entry[1] += Decimal(amount)
        return [{"concept": kind, "channel": channel, "payments": n, "amount": str(total)}
                for (kind, channel), (n, total) in sorted(totals.items())]
