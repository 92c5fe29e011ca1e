"""The treasury's doors (a mixin of BillingService): open accounts and charge them, import the
bank's reconciliation file, run the monthly statement batch, settle online payments the provider
never called back about, see what was collected, and check a printed document's code.

Long jobs go in slices a caller repeats (the CLI, with its progress bar): a bank file in chunks
of rows, a statement batch in slices of accounts. Each slice records how far it got in the same
store, so a job stopped halfway resumes where it stopped, and a slice sent twice changes nothing
twice (a payment is applied once per reference; a statement is issued and sent once a period).
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import eventlet
from marshmallow import Schema, ValidationError, fields, validate, validates
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response, read_json
from shared.chassis.auth import WorkerAuth
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc
from shared.chassis.rpcclient import RemoteService
from shared.contracts.fields import Line, pattern

from . import metrics as figures
from . import records
from .application import AccountNotFound
from .bankfile import BankRowSchema, reason
from .citizen import send_statement, settle_checkout
from .dependencies import Billing
from .domainmodel import BillingError
from .errors import ERRORS, http_errors
from .pages import page
from .schemas import (
    AccountPath,
    AssessSchema,
    NewAccountSchema,
    ReadingSchema,
    StatementBatchSchema,
)
from .window import actor, clerk_of

log = logging.getLogger(__name__)
TREASURY = ("system",)  # and admin: the bank file, the batches, the reconciliation
JSON = {"application/json": None}
MAX_CHUNK = 1000
LAST_LINE = 2**31 - 1  # a line number the rejects' table holds
APPLIERS = 8  # bank rows applied at once (each its own transaction)
SENDERS = 8  # statements rendered and handed to notifications at once in a batch
NEW_ACCOUNT, READING, ASSESS, BATCH, ACCOUNT_PATH, BANK_ROW = (
    NewAccountSchema(), ReadingSchema(), AssessSchema(), StatementBatchSchema(), AccountPath(),
    BankRowSchema())


class ImportChunk(Schema):
    file_id = Line(64, required=True, validate=pattern(r"^[0-9a-f]{64}$", "a SHA-256, hex"))
    filename = Line(255, required=True, min_length=1)
    rows_total = fields.Integer(required=True, strict=True, validate=validate.Range(0, 200000))
    first_row = fields.Integer(required=True, strict=True, validate=validate.Range(0, 200000))
    rows = fields.List(fields.Dict(), required=True, validate=validate.Length(max=MAX_CHUNK))

    @validates("rows")
    def numbered(self, rows: list[dict[str, Any]], **_: Any) -> None:
        """Each row names its line in the file: a rejected row is kept (and reported) by it."""
        unnumbered = {index: {"row": ["the row's line number in the file, an integer from 2"]}
                      for index, row in enumerate(rows)
                      if type(row.get("row")) is not int or not 2 <= row["row"] <= LAST_LINE}
        if unnumbered:
            raise ValidationError(unnumbered)


class VerifyQuery(Schema):
    documento = Line(100, required=True, min_length=1)
    codigo = Line(19, required=True, validate=pattern(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$",
                                                      "a code such as ABCD-EFGH-IJKL-MNOP"))
    fecha = fields.Date(load_default=None)


CHUNK, VERIFY = ImportChunk(), VerifyQuery()


class TreasuryDoors:
    """Accounts, charges, the bank file, statement batches, reconciliation, collection."""

    billing: Billing
    auth: WorkerAuth
    notifications: RemoteService

    # ---- accounts and charges --------------------------------------------------------------------

    @rpc(errors=ERRORS)
    def open_account(self, account: dict[str, Any]) -> dict[str, Any]:
        """`open_account({"kind": "multas", "key": "M-2026-000045", "check": "ABC123D",
        "holder": "...", "description": "ABC123D", "plate": "ABC123D", "offence":
        "semaforo_rojo", "ticket_on": "2026-11-30"})` -> the statement. A clerk of the area."""
        data = NEW_ACCOUNT.load(account)
        principal = clerk_of(self.auth, data["kind"])
        if data["ticket_on"] and data["ticket_on"] > self.billing.now().date():
            raise ValidationError({"ticket_on": ["a ticket is not dated after today"]})
        details = {name: str(data[name]) for name in (
            "cadastral_value", "initial_reading", "plate", "offence", "ticket_on")
            if data.get(name) is not None}
        opened = self.billing.app.open_account(
            data["kind"], data["key"], data["check"].upper(), data["holder"],
            data["description"], details, data["opened_on"] or self.billing.now().date(),
            actor(principal))
        return self.billing.statement(opened)

    @rpc(errors=ERRORS)
    def assess_predial(self, key: str, year: int) -> dict[str, Any]:
        """The year's property tax on a predial account, from its cadastral value (once)."""
        path = ACCOUNT_PATH.load({"kind": "predial", "key": key})
        clerk_of(self.auth, "predial")
        data = ASSESS.load({"year": year})
        account = self.billing.app.assess_predial(path["key"], data["year"],
                                                  self.billing.now().date())
        return self.billing.statement(account)

    @rpc(errors=ERRORS)
    def record_reading(self, key: str, reading: dict[str, Any]) -> dict[str, Any]:
        """A water meter reading: {"read_on": "2026-11-30", "reading": "135"} -> the month's
        bill from the m³ used since the last reading."""
        path = ACCOUNT_PATH.load({"kind": "agua", "key": key})
        clerk_of(self.auth, "agua")
        data = READING.load(reading)
        account = self.billing.app.record_reading(path["key"], data["read_on"],
                                                  Decimal(data["reading"]))
        return self.billing.statement(account)

    @http("POST", "/cuentas", max_body=4096)
    @api(body=NewAccountSchema, answers={201: JSON}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_open_account(self, request: Request) -> Response:
        return json_response(self.open_account(read_json(request)), 201)

    @http("POST", "/cuentas/agua/<string:key>/lecturas", max_body=1024)
    @api(body=ReadingSchema, answers={200: JSON}, auth=(BEARER,), errors=(404, 409))
    @http_errors
    def http_record_reading(self, request: Request, key: str) -> Response:
        return json_response(self.record_reading(key, read_json(request)))

    @http("POST", "/cuentas/predial/<string:key>/emision", max_body=1024)
    @api(body=AssessSchema, answers={200: JSON}, auth=(BEARER,), errors=(404, 409))
    @http_errors
    def http_assess_predial(self, request: Request, key: str) -> Response:
        return json_response(self.assess_predial(key, ASSESS.load(read_json(request))["year"]))

    # ---- the bank's file -------------------------------------------------------------------------

    @rpc(errors=ERRORS)
    def bank_import_status(self, file_id: str) -> dict[str, Any]:
        """How far the bank file with this SHA-256 got (rows_done 0: never seen)."""
        self.auth.require(*TREASURY)
        found = CHUNK.load({"file_id": file_id, "filename": "-", "rows_total": 0,
                            "first_row": 0, "rows": []})
        return records.import_status(self.billing.store, found["file_id"])

    @rpc(errors=ERRORS)
    def import_bank_rows(self, file_id: str, filename: str, rows_total: int, first_row: int,
                         rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply one chunk of the bank file: each row once by its reference (a row applied
        before is counted as a duplicate), a bad row rejected with its reason and line."""
        self.auth.require(*TREASURY)
        data = CHUNK.load({"file_id": file_id, "filename": filename, "rows_total": rows_total,
                           "first_row": first_row, "rows": rows})
        billing = self.billing
        done = records.import_status(billing.store, data["file_id"])["rows_done"]
        if data["first_row"] > done:
            raise ValidationError({"first_row": [f"this file got to row {done}: resume there"]})
        counts = {"applied": 0, "duplicates": 0}
        rejects: list[dict[str, Any]] = []
        # Rows side by side: most pay different accounts; two on one account take turns (a
        # version conflict retries), and a reference twice in the file lands once.
        for outcome in eventlet.GreenPool(APPLIERS).imap(self._bank_row, data["rows"]):
            if isinstance(outcome, str):
                counts[outcome] += 1
            else:
                rejects.append(outcome)
            figures.IMPORT_ROWS.labels(outcome if isinstance(outcome, str) else "rejected").inc()
        rows_done = data["first_row"] + len(data["rows"])
        with billing.store.transaction() as tx:
            records.record_import(tx, data["file_id"], data["filename"], data["rows_total"],
                                  rows_done, counts, rejects, billing.now())
        return {"rows_done": max(rows_done, done), **counts, "rejected": rejects}

    def _bank_row(self, raw: dict[str, Any]) -> str | dict[str, Any]:
        number = raw.get("row") if isinstance(raw.get("row"), int) else None
        try:
            row = BANK_ROW.load(raw)
        except ValidationError as error:  # a column's name is the bank's text: NUL escaped
            return {"row": number, "error": "".join(
                c if c.isprintable() else repr(c)[1:-1] for c in reason(error))}
        billing = self.billing
        paid_at = datetime.combine(row["paid_on"], time(12), billing.timezone)
        try:
            applied = billing.app.pay(row["kind"], row["key"], row["reference"], row["amount"],
                                      "bank", paid_at)
        except (AccountNotFound, BillingError) as error:
            return {"row": number, "error": str(error)}
        if not applied.first_time:
            return "duplicates"
        figures.paid("bank", row["kind"], row["amount"])
        return "applied"

    # ---- statements ------------------------------------------------------------------------------

    @rpc(errors=ERRORS)
    def statement_batch(self, period: str, kind: str | None = None,
                        start_after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One slice of the month's statements: each account's statement issued (once a
        period) and, where the account chose a channel, its PDF sent through notifications
        (once: the period's statement is one reference). Repeat with `next` until it is null;
        without `start_after` a batch resumes where it last got to."""
        self.auth.require(*TREASURY)
        data = BATCH.load({"period": period, "kind": kind, "start_after": start_after,
                           "limit": limit})
        billing, name = self.billing, f"{data['period']}:{data['kind'] or 'todas'}"
        # The lists as they stand, without waiting for the follower: an account opened a
        # moment ago is in the next slice or the next month's batch, and a batch must not wait
        # behind a bank file's worth of payments the follower is still catching up on.
        lists = billing.runtime.projector
        cursor = data["start_after"] or (records.batch(billing.store, name) or {}).get("cursor")
        after = tuple(cursor.split(":", 1)) if cursor else None
        accounts = lists.accounts(data["kind"], after, data["limit"])  # type: ignore[arg-type]
        total = lists.count(data["kind"])
        pool = eventlet.GreenPool(SENDERS)
        outcomes = list(pool.imap(lambda found: self._statement_of(data["period"], *found),
                                  accounts))
        counts = {"done": len(outcomes), "sent": outcomes.count("sent"),
                  "skipped": outcomes.count("skipped")}
        failed = [o for o in outcomes if isinstance(o, dict)]
        counts["failed"] = len(failed)
        last = f"{accounts[-1][0]}:{accounts[-1][1]}" if accounts else cursor
        finished = len(accounts) < data["limit"]
        state = records.record_batch(billing.store, name, total, last, counts, finished,
                                     billing.now())
        figures.BATCH_DONE.labels(name).set(state["done"])
        figures.BATCH_TOTAL.labels(name).set(total)
        return {"period": data["period"], "batch": name, "done": state["done"],
                "total": total, "sent": state["sent"], "skipped": state["skipped"],
                "failed": failed, "next": None if finished else last}

    def _statement_of(self, period: str, kind: str, key: str) -> str | dict[str, Any]:
        billing = self.billing
        try:
            account = billing.app.issue_statement(kind, key, period, billing.now().date())
            contact = records.contact(billing.store, kind, key)
            if contact is None:
                return "skipped"
            statement = self.billing.statement(account, period)
            # Sent once per the batch's period: the period's statement is one reference.
            send_statement(billing, self.notifications, account, statement, contact,
                           f"statement:{statement['number']}")
            return "sent"
        except Exception as error:  # one account's failure is reported, the batch goes on
            log.warning("statement of %s %s failed: %r", kind, key, error)
            return {"account": f"{kind}:{key}", "error": str(error)[:300]}

    # ---- online payments the provider did not call back about ---------------------------------

    @rpc(errors=ERRORS)
    def reconcile_checkouts(self, older_than_minutes: int = 15) -> dict[str, int]:
        """Ask the provider about checkouts still pending after N minutes (its callback was
        lost): approved ones are applied (once), declined ones closed, the rest left pending."""
        self.auth.require(*TREASURY)
        minutes = fields.Integer(strict=True, validate=validate.Range(0, 10080)).deserialize(
            older_than_minutes)
        billing = self.billing
        settled = {"applied": 0, "declined": 0, "pending": 0}
        older = billing.now() - timedelta(minutes=minutes)
        for reference in records.pending_checkouts(billing.store, older):
            word = billing.provider.status(reference)
            if word is None:
                settled["pending"] += 1
                continue
            outcome = settle_checkout(billing, word)["status"]
            settled["declined" if outcome == "declined" else "applied"] += 1
        return settled

    # ---- collection and verification -------------------------------------------------------------

    @rpc(errors=ERRORS)
    def collected(self, since: str, until: str) -> list[dict[str, Any]]:
        """Payments by concept and channel between two days (inclusive): clerks, auditors."""
        self.auth.require("billing_clerk", "auditor", "system")
        days = {"since": fields.Date(required=True).deserialize(since),
                "until": fields.Date(required=True).deserialize(until)}
        return self.billing.lists().collected(days["since"].isoformat(),
                                              days["until"].isoformat())

    @http("GET", "/verificar", html=True)
    @api(query=VerifyQuery, answers={200: {"text/html": None}, 400: {"text/html": None}})
    @http_errors
    def verify_page(self, request: Request) -> Response:
        """Is this printed receipt real? The reference and the code on it, checked again."""
        answer = 200
        try:
            data = VERIFY.load(request.args)
            valid, what = self._verify(data)
        except ValidationError:  # no code ever printed looks like that: the same page, a 400
            valid, what, answer = False, "", 400
        except (AccountNotFound, ValueError):
            valid, what = False, ""
        text = (f"Documento válido: {what}." if valid else
                "Este código no corresponde a ningún documento de la Tesorería.")
        return page("message.html", self.billing.setting("PAYMENTS_URL"), answer,
                    title="Verificación de documentos", text=text,
                    tone="ok" if valid else "error", receipt_url=None, back_url=None)

    def _verify(self, data: dict[str, Any]) -> tuple[bool, str]:
        billing = self.billing
        receipt = billing.receipt(billing.app.payment(data["documento"]))
        valid = hmac.compare_digest(receipt["verification"], data["codigo"])
        return valid, (f"recibo del pago {receipt['reference']} por {receipt['amount']} MXN "
                       f"a la cuenta {receipt['account']['key']}"
                       + (" (pago cancelado después)" if receipt["reversed"] else ""))
