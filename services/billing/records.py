"""Billing's working tables beside the accounts' streams: online checkouts in flight, where each
account's statement goes, and the progress of bank imports and statement batches.

None of these is a ledger: money moves only as an account's events. A checkout row says which
account an online payment reference belongs to until the provider calls back; a bank import row
says how far a file got, so a second run resumes (and a row applied twice is applied once anyway,
by its reference). The statement contact is personal data and lives only here, erasable.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

DDL = {
    "billing_checkouts": "CREATE TABLE IF NOT EXISTS billing_checkouts ("
    " reference TEXT PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, amount TEXT NOT NULL,"
    " checkout_id TEXT, url TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL,"
    " settled_at TEXT)",
    "billing_contacts": "CREATE TABLE IF NOT EXISTS billing_contacts (kind TEXT NOT NULL,"
    " key TEXT NOT NULL, channel TEXT NOT NULL, email TEXT, phone TEXT,"
    " PRIMARY KEY (kind, key))",
    "billing_imports": "CREATE TABLE IF NOT EXISTS billing_imports (file_id TEXT PRIMARY KEY,"
    " filename TEXT NOT NULL, rows_total INTEGER NOT NULL, rows_done INTEGER NOT NULL,"
    " applied INTEGER NOT NULL, duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL,"
    " started_at TEXT NOT NULL, finished_at TEXT)",
    "billing_import_rejects": "CREATE TABLE IF NOT EXISTS billing_import_rejects ("
    " file_id TEXT NOT NULL, row_number INTEGER NOT NULL, error TEXT NOT NULL,"
    " PRIMARY KEY (file_id, row_number))",
    "billing_batches": "CREATE TABLE IF NOT EXISTS billing_batches (batch TEXT PRIMARY KEY,"
    " total INTEGER NOT NULL, done INTEGER NOT NULL, sent INTEGER NOT NULL,"
    " skipped INTEGER NOT NULL, failed INTEGER NOT NULL, cursor TEXT, started_at TEXT NOT NULL,"
    " finished_at TEXT)",
}


def prepare(store: SqlStore) -> None:
    create_missing(store, DDL)


# ---- online checkouts ----------------------------------------------------------------------------

def open_checkout(store: SqlStore, reference: str, kind: str, key: str, amount: Decimal,
                  now: datetime) -> None:
    store.run("INSERT INTO billing_checkouts (reference, kind, key, amount, status, created_at) "
              "VALUES (%s, %s, %s, %s, 'starting', %s)",
              (reference, kind, key, str(amount), now.isoformat()))


def started(store: SqlStore, reference: str, checkout_id: str, url: str) -> None:
    store.run("UPDATE billing_checkouts SET checkout_id = %s, url = %s, status = 'pending' "
              "WHERE reference = %s AND status = 'starting'", (checkout_id, url, reference))


def checkout(store: SqlStore, reference: str) -> dict[str, Any] | None:
    rows = store.run("SELECT reference, kind, key, amount, checkout_id, url, status, created_at,"
                     " settled_at FROM billing_checkouts WHERE reference = %s", (reference,))[0]
    if not rows:
        return None
    names = ("reference", "kind", "key", "amount", "checkout_id", "url", "status", "created_at",
             "settled_at")
    return dict(zip(names, rows[0], strict=True))


def settle(store: SqlStore, reference: str, status: str, now: datetime) -> None:
    """The provider's word on a checkout: approved or declined, once (a later word is ignored)."""
    store.run("UPDATE billing_checkouts SET status = %s, settled_at = %s "
              "WHERE reference = %s AND status IN ('starting', 'pending')",
              (status, now.isoformat(), reference))


def pending_checkouts(store: SqlStore, older_than: datetime, limit: int = 500) -> list[str]:
    rows = store.run("SELECT reference FROM billing_checkouts WHERE status = 'pending' AND "
                     "created_at < %s ORDER BY created_at LIMIT %s",
                     (older_than.isoformat(), limit))[0]
    return [row[0] for row in rows]


# ---- where statements go ----------------------------------------------------------------------

def set_contact(store: SqlStore, kind: str, key: str, channel: str, email: str | None,
                phone: str | None) -> None:
    store.run("INSERT INTO billing_contacts (kind, key, channel, email, phone) VALUES "
              "(%s, %s, %s, %s, %s) ON CONFLICT (kind, key) DO UPDATE SET channel = "
              "excluded.channel, email = excluded.email, phone = excluded.phone",
              (kind, key, channel, email, phone))


def contact(store: SqlStore, kind: str, key: str) -> dict[str, Any] | None:
    rows = store.run("SELECT channel, email, phone FROM billing_contacts WHERE kind = %s AND "
                     "key = %s", (kind, key))[0]
    return dict(zip(("channel", "email", "phone"), rows[0], strict=True)) if rows else None


def erase_contact(store: SqlStore, kind: str, key: str) -> bool:
    return bool(store.run("DELETE FROM billing_contacts WHERE kind = %s AND key = %s",
                          (kind, key))[1])


# ---- bank imports --------------------------------------------------------------------------------

IMPORT_COLUMNS = ("file_id", "filename", "rows_total", "rows_done", "applied", "duplicates",
                  "rejected", "started_at", "finished_at")


def import_status(store: SqlStore, file_id: str) -> dict[str, Any]:
    rows = store.run(f"SELECT {', '.join(IMPORT_COLUMNS)} FROM billing_imports "
                     "WHERE file_id = %s", (file_id,))[0]
    if not rows:
        return {"file_id": file_id, "filename": None, "rows_total": 0, "rows_done": 0,
                "applied": 0, "duplicates": 0, "rejected": 0, "finished": False}
    found = dict(zip(IMPORT_COLUMNS, rows[0], strict=True))
    found["finished"] = found.pop("finished_at") is not None
    found.pop("started_at")
    return found


def record_import(tx: Tx, file_id: str, filename: str, rows_total: int, rows_done: int,
                  counts: dict[str, int], rejects: list[dict[str, Any]], now: datetime) -> None:
    """Move the file's progress to `rows_done` (never back), adding this chunk's counts."""
    tx.execute("INSERT INTO billing_imports (file_id, filename, rows_total, rows_done, applied,"
               " duplicates, rejected, started_at) VALUES (%s, %s, %s, 0, 0, 0, 0, %s) "
               "ON CONFLICT (file_id) DO NOTHING", (file_id, filename, rows_total,
                                                    now.isoformat()))
    for reject in rejects:
        tx.execute("INSERT INTO billing_import_rejects (file_id, row_number, error) VALUES "
                   "(%s, %s, %s) ON CONFLICT (file_id, row_number) DO NOTHING",
                   (file_id, reject["row"], reject["error"][:500]))
    tx.execute("UPDATE billing_imports SET rows_done = %s, applied = applied + %s, "
               "duplicates = duplicates + %s, rejected = (SELECT COUNT(*) FROM "
               "billing_import_rejects WHERE file_id = %s), finished_at = CASE WHEN %s >= "
               "rows_total THEN %s ELSE finished_at END WHERE file_id = %s AND rows_done < %s",
               (rows_done, counts["applied"], counts["duplicates"], file_id, rows_done,
                now.isoformat(), file_id, rows_done))


# ---- statement batches ------------------------------------------------------------------------

BATCH_COLUMNS = ("batch", "total", "done", "sent", "skipped", "failed", "cursor", "started_at",
                 "finished_at")


def batch(store: SqlStore, name: str) -> dict[str, Any] | None:
    rows = store.run(f"SELECT {', '.join(BATCH_COLUMNS)} FROM billing_batches WHERE batch = %s",
                     (name,))[0]
    return dict(zip(BATCH_COLUMNS, rows[0], strict=True)) if rows else None


def record_batch(store: SqlStore, name: str, total: int, cursor: str | None,
                 counts: dict[str, int], finished: bool, now: datetime) -> dict[str, Any]:
    with store.transaction() as tx:
        tx.execute("INSERT INTO billing_batches (batch, total, done, sent, skipped, failed, "
                   "cursor, started_at) VALUES (%s, %s, 0, 0, 0, 0, NULL, %s) "
                   "ON CONFLICT (batch) DO NOTHING", (name, total, now.isoformat()))
        tx.execute("UPDATE billing_batches SET total = %s, done = done + %s, sent = sent + %s, "
                   "skipped = skipped + %s, failed = failed + %s, cursor = %s, finished_at = %s "
                   "WHERE batch = %s",
                   (total, counts["done"], counts["sent"], counts["skipped"], counts["failed"],
                    cursor, now.isoformat() if finished else None, name))
    found = batch(store, name)
    assert found is not None
    return found
