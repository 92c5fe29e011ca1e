"""Folio allocation: short, dictatable report numbers (`QRO-2026-000123`), allocated atomically.

Numbers come from a counter row per prefix and year in the tracking database. Each process takes a
block of numbers per round trip, so allocation stays cheap under load; a crash loses at most the
rest of a block (gaps are allowed, duplicates never).

A caller that may retry an open (intake, with the citizen's idempotency key) names its request:
the first folio given for a request key is the folio every retry of it gets, so the retry lands on
the same report stream (whose id derives from the folio) instead of opening a second report."""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.chassis.sqlstore import SqlStore

from ..domainmodel import format_folio

DDL = """CREATE TABLE IF NOT EXISTS folio_counters (
    prefix TEXT NOT NULL, year INTEGER NOT NULL, last BIGINT NOT NULL,
    PRIMARY KEY (prefix, year))"""
REQUESTS_DDL = """CREATE TABLE IF NOT EXISTS folio_requests (
    request_key TEXT PRIMARY KEY, folio TEXT NOT NULL, created_at TEXT NOT NULL)"""


class FolioAllocator:
    def __init__(self, store: SqlStore, prefix: str, timezone: str, block_size: int = 10) -> None:
        self.store = store
        self.prefix = prefix
        self.tz = ZoneInfo(timezone)
        self.block_size = max(1, block_size)
        self._lock = threading.Lock()
        self._blocks: dict[int, tuple[int, int]] = {}
        with store.transaction() as tx:
            tx.lock_schema()
            tx.execute(DDL)
            tx.execute(REQUESTS_DDL)

    def next_folio(self, now: datetime | None = None) -> str:
        year = (now or datetime.now(self.tz)).astimezone(self.tz).year
        with self._lock:
            nxt, last = self._blocks.get(year, (1, 0))
            if nxt > last:
                last = self._take_block(year)
                nxt = last - self.block_size + 1
            self._blocks[year] = (nxt + 1, last)
        return format_folio(self.prefix, year, nxt)

    def folio_for_request(self, request_key: str) -> str:
        """The folio reserved for this request: a fresh one the first time, the same one after."""
        rows, _ = self.store.run(
            "INSERT INTO folio_requests (request_key, folio, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (request_key) DO NOTHING RETURNING folio",
            (request_key, self.next_folio(), datetime.now(self.tz).isoformat()))
        if rows:
            return str(rows[0][0])
        rows, _ = self.store.run("SELECT folio FROM folio_requests WHERE request_key = %s",
                                 (request_key,))
        return str(rows[0][0])

    def _take_block(self, year: int) -> int:
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO folio_counters (prefix, year, last) VALUES (%s, %s, 0) "
                "ON CONFLICT (prefix, year) DO NOTHING",
                (self.prefix, year),
            )
            row = tx.execute(
                "UPDATE folio_counters SET last = last + %s WHERE prefix = %s AND year = %s "
                "RETURNING last",
                (self.block_size, self.prefix, year),
            ).fetchone()
        assert row is not None
        return int(row[0])
