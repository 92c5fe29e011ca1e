"""Intake's own tables: the service catalog, submissions (idempotency keys, Open311 tokens) and
chatbot conversations. Same database family as every service: SQLite by default, PostgreSQL in
production, chosen by environment through shared.chassis.sqlstore."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from shared.chassis.photos import NAME as PHOTO_NAME
from shared.chassis.sqlstore import SqlStore

from .catalog import ServiceDefinition

DDL = (
    "CREATE TABLE IF NOT EXISTS intake_services (code TEXT PRIMARY KEY, definition TEXT NOT NULL,"
    " active INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    # One row per submission whatever the channel: the idempotency key (the app's own, or one we
    # make), the Open311 token, the citizen's access token while tracking has not answered (a
    # retry sends the same open again), and then the folio and the answer we gave.
    "CREATE TABLE IF NOT EXISTS intake_submissions (idempotency_key TEXT PRIMARY KEY,"
    " fingerprint TEXT NOT NULL, token TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,"
    " state TEXT NOT NULL, folio TEXT, response TEXT, created_at TEXT NOT NULL,"
    " access_token TEXT)",
    "CREATE INDEX IF NOT EXISTS intake_submissions_folio ON intake_submissions (folio)",
    # The hourly purge finds unfinished submissions and idle conversations without a scan.
    "CREATE INDEX IF NOT EXISTS intake_submissions_unfinished ON intake_submissions (created_at)"
    " WHERE state = 'pending'",
    "CREATE TABLE IF NOT EXISTS intake_conversations (sender TEXT PRIMARY KEY,"
    " state TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS intake_conversations_idle ON intake_conversations (updated_at)",
    # Photos we stored, and the folio of the report that references each: an upload no report
    # ever used is an orphan, removed after PHOTO_ORPHAN_HOURS.
    "CREATE TABLE IF NOT EXISTS intake_photos (name TEXT PRIMARY KEY, uploaded_at TEXT NOT NULL,"
    " folio TEXT)",
    "CREATE INDEX IF NOT EXISTS intake_photos_orphans ON intake_photos (uploaded_at)"
    " WHERE folio IS NULL",
    # How many photos each upload ticket took (a row from its first photo until it expires),
    # and the hourly allowances: photos per client, tickets per client, photos per staff member.
    "CREATE TABLE IF NOT EXISTS intake_upload_tickets (ticket TEXT PRIMARY KEY,"
    " used INTEGER NOT NULL, expires_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS intake_allowances (counter TEXT NOT NULL,"
    " window_start TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (counter, window_start))",
)
CATALOG_TTL = 5.0  # seconds another replica's catalog edit may take to show here


@dataclass(frozen=True)
class Claim:
    """What claiming an idempotency key found: `new` (go ahead), `done` (answer `response`
    again), `pending` (an earlier attempt has not finished: it may still be running, or it died;
    go ahead with its tokens) or `mismatch` (same key, other body)."""

    outcome: str
    token: str | None = None
    response: dict[str, Any] | None = None
    access_token: str | None = None


class Conversation(NamedTuple):
    state: dict[str, Any] | None
    version: int
    updated_at: datetime | None


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ConversationChanged(Exception):
    """Another message from the same sender moved the conversation first: start again from
    the stored state."""


class IntakeStore:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql
        with sql.transaction() as tx:
            tx.lock_schema()
            for statement in DDL:
                tx.execute(statement)
        self._add_access_token_column()
        self._catalog: dict[str, ServiceDefinition] | None = None
        self._catalog_read = 0.0

    def _add_access_token_column(self) -> None:
        """Databases made before submissions kept the access token get the column."""
        try:
            self.sql.run("SELECT access_token FROM intake_submissions WHERE 1 = 0")
        except Exception:  # no such column (sqlite3.OperationalError, psycopg UndefinedColumn)
            # PostgreSQL: another replica may be adding it right now.
            if_missing = " IF NOT EXISTS" if self.sql.dialect == "postgres" else ""
            self.sql.run(f"ALTER TABLE intake_submissions ADD COLUMN{if_missing} access_token TEXT")

    # ---- catalog ------------------------------------------------------------------------------

    def services(self) -> dict[str, ServiceDefinition]:
        """Every definition by code, active or not (cached for a few seconds)."""
        if self._catalog is None or time.monotonic() - self._catalog_read > CATALOG_TTL:
            with self.sql.transaction() as tx:
                rows = tx.execute("SELECT definition FROM intake_services").fetchall()
            self._catalog = {d.code: d for d in (
                ServiceDefinition.from_dict(json.loads(row[0])) for row in rows)}
            self._catalog_read = time.monotonic()
        return self._catalog

    def catalog_changed_at(self) -> str | None:
        """When an admin last changed the catalog (ISO, UTC), or None for an empty catalog."""
        rows, _ = self.sql.run("SELECT MAX(updated_at) FROM intake_services")
        return rows[0][0] if rows else None

    def put_service(self, definition: ServiceDefinition) -> None:
        row = (definition.code, json.dumps(definition.as_dict(), ensure_ascii=False),
               1 if definition.active else 0, _now())
        with self.sql.transaction() as tx:
            tx.execute("INSERT INTO intake_services (code, definition, active, updated_at) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET "
                       "definition = excluded.definition, active = excluded.active, "
                       "updated_at = excluded.updated_at", row)
        self._catalog = None

    def seed(self, definitions: list[ServiceDefinition]) -> int:
        """Load the definitions whose code is not in the catalog yet; returns how many."""
        rows = [(d.code, json.dumps(d.as_dict(), ensure_ascii=False), 1, _now())
                for d in definitions]
        with self.sql.transaction() as tx:
            [(before,)] = tx.execute("SELECT COUNT(*) FROM intake_services").fetchall()
            tx.executemany("INSERT INTO intake_services (code, definition, active, updated_at) "
                           "VALUES (%s, %s, %s, %s) ON CONFLICT (code) DO NOTHING", rows)
            [(after,)] = tx.execute("SELECT COUNT(*) FROM intake_services").fetchall()
        self._catalog = None
        return int(after) - int(before)

    # ---- submissions --------------------------------------------------------------------------

    def claim(self, key: str, fingerprint: str, channel: str, token: str,
              access_token: str) -> Claim:
        """Take the idempotency key for this submission, or say who has it."""
        _, inserted = self.sql.run(
            "INSERT INTO intake_submissions (idempotency_key, fingerprint, token, channel, state,"
            " created_at, access_token) VALUES (%s, %s, %s, %s, 'pending', %s, %s) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (key, fingerprint, token, channel, _now(), access_token))
        if inserted == 1:
            return Claim("new", token, access_token=access_token)
        rows, _ = self.sql.run("SELECT fingerprint, token, state, response, access_token FROM "
                               "intake_submissions WHERE idempotency_key = %s", (key,))
        stored_fingerprint, stored_token, state, response, stored_access = rows[0]
        if stored_fingerprint != fingerprint:
            return Claim("mismatch", stored_token)
        if state != "done":
            return Claim("pending", stored_token, access_token=stored_access)
        return Claim("done", stored_token, json.loads(response))

    def release(self, key: str, fingerprint: str) -> None:
        """Give back a key whose report tracking refused for good (a 4xx): nothing was opened,
        so nothing of the submission is kept."""
        self.sql.run("DELETE FROM intake_submissions WHERE idempotency_key = %s AND "
                     "fingerprint = %s AND state = 'pending'", (key, fingerprint))

    def record(self, key: str, fingerprint: str, channel: str, token: str, folio: str,
               response: dict[str, Any]) -> None:
        """A submission that came without an idempotency key, recorded once it has its folio
        (one write instead of claim + complete: nobody can retry with a key they never had)."""
        self.sql.run("INSERT INTO intake_submissions (idempotency_key, fingerprint, token, "
                     "channel, state, folio, response, created_at) "
                     "VALUES (%s, %s, %s, %s, 'done', %s, %s, %s)",
                     (key, fingerprint, token, channel, folio,
                      json.dumps(response, ensure_ascii=False), _now()))

    def complete(self, key: str, folio: str, response: dict[str, Any]) -> None:
        self.sql.run("UPDATE intake_submissions SET state = 'done', folio = %s, response = %s, "
                     "access_token = NULL WHERE idempotency_key = %s",
                     (folio, json.dumps(response, ensure_ascii=False), key))

    def forget_access_tokens(self, created_before: datetime, limit: int = 500) -> int:
        """Drop the citizen's access token from answers kept for replays once the replay window
        is over (a later replay answers without it): intake is not where that secret lives."""
        rows, _ = self.sql.run(
            "SELECT idempotency_key, response FROM intake_submissions WHERE state = 'done' AND "
            "created_at < %s AND response LIKE %s LIMIT %s",
            (created_before.astimezone(UTC).isoformat(), '%"access_token": "%', limit))
        for key, response in rows:
            kept = {k: v for k, v in json.loads(response).items() if k != "access_token"}
            self.sql.run("UPDATE intake_submissions SET response = %s WHERE idempotency_key = %s",
                         (json.dumps(kept, ensure_ascii=False), key))
        return len(rows)

    def forget_unfinished(self, created_before: datetime, limit: int = 500) -> int:
        """Delete submissions claimed before `created_before` whose report was never opened (and
        the citizen's access token kept for their retries); how many, at most `limit`. A retry
        after this opens the report if it never was; if it was, tracking refuses the new token."""
        cutoff = created_before.astimezone(UTC).isoformat()
        # The outer conditions again: a submission completed meanwhile is kept (PostgreSQL
        # checks them on the row's newest version).
        _, deleted = self.sql.run(
            "DELETE FROM intake_submissions WHERE state = 'pending' AND created_at < %s AND "
            "idempotency_key IN (SELECT idempotency_key FROM intake_submissions WHERE "
            "state = 'pending' AND created_at < %s ORDER BY created_at LIMIT %s)",
            (cutoff, cutoff, limit))
        return deleted

    def folio_for_token(self, token: str) -> tuple[bool, str | None]:
        """(known, folio): an Open311 token we issued, and its folio once there is one."""
        rows, _ = self.sql.run("SELECT folio FROM intake_submissions WHERE token = %s", (token,))
        return (False, None) if not rows else (True, rows[0][0])

    # ---- photos -------------------------------------------------------------------------------

    def photo_uploaded(self, name: str) -> None:
        self.sql.run("INSERT INTO intake_photos (name, uploaded_at) VALUES (%s, %s) "
                     "ON CONFLICT (name) DO NOTHING", (name, _now()))

    def photos_used(self, urls: list[str], folio: str) -> None:
        """Mark the photos of ours among a report's media URLs as that report's."""
        names = [name for name in (url.rpartition("/")[2] for url in urls)
                 if PHOTO_NAME.match(name)]
        for name in names:
            self.sql.run("UPDATE intake_photos SET folio = %s WHERE name = %s AND folio IS NULL",
                         (folio, name))

    def orphan_photos(self, uploaded_before: datetime, limit: int = 500) -> list[str]:
        rows, _ = self.sql.run("SELECT name FROM intake_photos WHERE folio IS NULL AND "
                               "uploaded_at < %s ORDER BY uploaded_at LIMIT %s",
                               (uploaded_before.astimezone(UTC).isoformat(), limit))
        return [row[0] for row in rows]

    def forget_photo(self, name: str) -> None:
        self.sql.run("DELETE FROM intake_photos WHERE name = %s AND folio IS NULL", (name,))

    # ---- upload tickets and allowances --------------------------------------------------------

    def use_ticket(self, ticket: str, expires_at: datetime, photos: int) -> bool:
        """Count one photo on `ticket`, unless it has taken `photos` already: whether it may."""
        _, changed = self.sql.run(
            "INSERT INTO intake_upload_tickets (ticket, used, expires_at) VALUES (%s, 1, %s) "
            "ON CONFLICT (ticket) DO UPDATE SET used = intake_upload_tickets.used + 1 "
            "WHERE intake_upload_tickets.used < %s",
            (ticket, expires_at.astimezone(UTC).isoformat(), photos))
        return changed == 1

    def take_allowance(self, counter: str, window_start: datetime, limit: int) -> bool:
        """Count one use of `counter` in the window starting at `window_start`, unless `limit`
        were counted already: whether this one is allowed. One statement, so replicas and
        concurrent requests never both take the last one."""
        _, changed = self.sql.run(
            "INSERT INTO intake_allowances (counter, window_start, used) VALUES (%s, %s, 1) "
            "ON CONFLICT (counter, window_start) DO UPDATE SET used = intake_allowances.used + 1"
            " WHERE intake_allowances.used < %s",
            (counter, window_start.astimezone(UTC).isoformat(), limit))
        return changed == 1

    def forget_uploads_before(self, moment: datetime) -> int:
        """Drop tickets that expired and allowance windows that started before `moment`."""
        cutoff = moment.astimezone(UTC).isoformat()
        with self.sql.transaction() as tx:
            tx.execute("DELETE FROM intake_upload_tickets WHERE expires_at < %s", (cutoff,))
            removed = tx.rowcount
            tx.execute("DELETE FROM intake_allowances WHERE window_start < %s", (cutoff,))
            return removed + tx.rowcount

    # ---- chatbot conversations ----------------------------------------------------------------

    def conversation(self, sender: str) -> Conversation:
        """The sender's conversation; version 0 when there is none."""
        rows, _ = self.sql.run("SELECT state, version, updated_at FROM intake_conversations "
                               "WHERE sender = %s", (sender,))
        if not rows:
            return Conversation(None, 0, None)
        state, version, updated_at = rows[0]
        return Conversation(json.loads(state), int(version), datetime.fromisoformat(updated_at))

    def save_conversation(self, sender: str, state: dict[str, Any] | None,
                          version: int) -> None:
        """Store the state read at `version` (None ends the conversation); if another replica
        changed it since, ConversationChanged and nothing is written."""
        params: tuple[Any, ...]
        if state is None:
            sql, params = ("DELETE FROM intake_conversations WHERE sender = %s AND version = %s",
                           (sender, version))
        elif version == 0:
            sql, params = ("INSERT INTO intake_conversations (sender, state, version, updated_at)"
                           " VALUES (%s, %s, 1, %s) ON CONFLICT (sender) DO NOTHING",
                           (sender, json.dumps(state, ensure_ascii=False), _now()))
        else:
            sql, params = ("UPDATE intake_conversations SET state = %s, version = version + 1, "
                           "updated_at = %s WHERE sender = %s AND version = %s",
                           (json.dumps(state, ensure_ascii=False), _now(), sender, version))
        _, changed = self.sql.run(sql, params)
        if changed != 1 and not (state is None and version == 0):
            raise ConversationChanged(sender)

    def forget_conversations(self, untouched_since: datetime, limit: int = 500) -> int:
        """Delete the chatbot conversations nobody wrote to since `untouched_since`, with what
        the citizen said in them; how many, at most `limit`."""
        cutoff = untouched_since.astimezone(UTC).isoformat()
        # A conversation that moves on meanwhile is kept: the outer condition sees its new time.
        _, deleted = self.sql.run(
            "DELETE FROM intake_conversations WHERE updated_at < %s AND sender IN (SELECT "
            "sender FROM intake_conversations WHERE updated_at < %s ORDER BY updated_at LIMIT %s)",
            (cutoff, cutoff, limit))
        return deleted
