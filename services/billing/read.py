"""Billing's read models, kept by a log follower: a row per account and one per payment.

The statement itself is read from the account's stream (a handful of events, snapshotted): the
rows here are what lists need — the accounts a statement batch walks, the payments collected by
concept and channel. The projector writes each changed account as it now stands; a row's
`version` only moves forward, so a replayed or rebuilt batch changes nothing newer.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

from .domainmodel import ZERO, Account

ACCOUNT_TOPIC = f"{Account.__module__}:{Account.__qualname__}."
DDL = {
    "billing_accounts": "CREATE TABLE IF NOT EXISTS billing_accounts (kind TEXT NOT NULL,"
    " key TEXT NOT NULL, balance TEXT NOT NULL, version INTEGER NOT NULL,"
    " PRIMARY KEY (kind, key))",
    "billing_payments": "CREATE TABLE IF NOT EXISTS billing_payments (reference TEXT PRIMARY KEY,"
    " kind TEXT NOT NULL, key TEXT NOT NULL, channel TEXT NOT NULL, amount TEXT NOT NULL,"
    " paid_on TEXT NOT NULL, reversed INTEGER NOT NULL)",
    "billing_payments_day": "CREATE INDEX IF NOT EXISTS billing_payments_day"
    " ON billing_payments (paid_on, kind)",
}


class BillingProjector(Handler):
    """Keeps `billing_accounts` and `billing_payments` up to date with the notification log."""

    def __init__(self, app: Any, store: SqlStore | None = None, name: str = "billing",
                 **options: Any) -> None:
        self.app = app
        self.store = store or app.sql
        create_missing(self.store, DDL)
        self.follower = (LogFollower(name, app, self, store=self.store, **options)
                         if app is not None else None)

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        changed: dict[Any, list[Any]] = {}  # in log order, once: each account, its payments
        for notification in notifications:
            if not notification.topic.startswith(ACCOUNT_TOPIC):
                continue  # a payment reference: its account's events say it all
            payments = changed.setdefault(notification.originator_id, [])
            if notification.topic.endswith((".PaymentReceived", ".PaymentReversed")):
                payments.append(self.app.mapper.to_domain_event(notification))
        for originator_id, payments in changed.items():
            account = self.app.repository.get(originator_id)
            tx.execute("INSERT INTO billing_accounts (kind, key, balance, version) VALUES "
                       "(%s, %s, %s, %s) ON CONFLICT (kind, key) DO UPDATE SET "
                       "balance = excluded.balance, version = excluded.version "
                       "WHERE billing_accounts.version < excluded.version",
                       (account.kind, account.key, str(account.balance), account.version))
            for event in payments:
                payment = account.payments[event.reference]
                tx.execute("INSERT INTO billing_payments (reference, kind, key, channel, amount,"
                           " paid_on, reversed) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                           "ON CONFLICT (reference) DO UPDATE SET reversed = excluded.reversed",
                           (payment.reference, account.kind, account.key, payment.channel,
                            str(payment.amount), payment.paid_at.date().isoformat(),
                            int(payment.reversed)))

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
            "SELECT kind, key FROM billing_accounts"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY kind, key LIMIT %s", (*params, limit))[0]
        return [(row[0], row[1]) for row in rows]

    def count(self, kind: str | None) -> int:
        rows = self.store.run("SELECT COUNT(*) FROM billing_accounts"
                              + (" WHERE kind = %s" if kind else ""),
                              (kind,) if kind else ())[0]
        return int(rows[0][0])

    def collected(self, since: str, until: str) -> list[dict[str, Any]]:
        """Payments (not reversed) by concept and channel between two days, inclusive."""
        rows = self.store.run("SELECT kind, channel, amount FROM billing_payments WHERE "
                              "paid_on >= %s AND paid_on <= %s AND reversed = 0",
                              (since, until))[0]
        totals: dict[tuple[str, str], list[Any]] = {}
        for kind, channel, amount in rows:  # summed as exact decimals, on either database
            entry = totals.setdefault((kind, channel), [0, ZERO])
            entry[0] += 1
            entry[1] += Decimal(amount)
        return [{"concept": kind, "channel": channel, "payments": n, "amount": str(total)}
                for (kind, channel), (n, total) in sorted(totals.items())]
