"""The citizen's doors (a mixin of BillingService): no account needed, only the bill's key and
its check value (a fine: the ticket and the plate). Read the statement, pay online through the
payment provider, download the receipt and the statement, have the statement sent each month.

The provider's callback is the only way an online payment lands: signed, applied once by its
reference (a retried callback answers as the first did), a declined one changes nothing.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any
from urllib.parse import urlencode

from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response, read_json
from shared.chassis.http import http
from shared.chassis.openapi import api
from shared.chassis.rpcclient import RemoteService

from . import documents, records
from . import metrics as figures
from .application import AccountNotFound
from .dependencies import Billing
from .domainmodel import REFERENCE, Account
from .errors import html_errors, http_errors
from .pages import HTML, page
from .provider import BadCallback
from .schemas import (
    AccountPath,
    CallbackQuery,
    CheckoutSchema,
    CheckQuery,
    SendStatementSchema,
)

log = logging.getLogger(__name__)
PDF = {"application/pdf": None}
ACCOUNT_PATH, CHECK, CHECKOUT, SEND = AccountPath(), CheckQuery(), CheckoutSchema(), \
    SendStatementSchema()


class LookupForm(AccountPath):
    check = CheckQuery().fields["check"]


class SendForm(AccountPath, SendStatementSchema):
    pass


class PayForm(AccountPath, CheckoutSchema):
    pass


LOOKUP, SEND_FORM, PAY_FORM, RETURN = LookupForm(), SendForm(), PayForm(), CallbackQuery()


def pdf_response(data: bytes, filename: str) -> Response:
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"',
                             "Cache-Control": "no-store"})


class CitizenDoors:
    """/api/cuentas/... (JSON), /pagos/... (pages), /payments/callback (the provider)."""

    billing: Billing
    notifications: RemoteService

    # ---- JSON ------------------------------------------------------------------------------------

    @http("GET", "/api/cuentas/<string:kind>/<string:key>")
    @api(path=AccountPath, query=CheckQuery, answers={200: {"application/json": None}},
         errors=(404,))
    @http_errors
    def http_statement(self, request: Request, kind: str, key: str) -> Response:
        """GET /api/cuentas/predial/14-001-0123-045?check=7391 -> the statement: lines, totals,
        {"to_pay": {"amount": "1156.00", "until": "2026-01-31", "discount": "204.00"}}"""
        account = self._opened(kind, key, request.args)
        return json_response(self.billing.statement(account))

    @http("POST", "/api/cuentas/<string:kind>/<string:key>/pago", max_body=2048)
    @api(path=AccountPath, body=CheckoutSchema, answers={201: {"application/json": None}},
         errors=(404, 409, 502))
    @http_errors
    def http_checkout(self, request: Request, kind: str, key: str) -> Response:
        """POST {"check": "7391"} -> 201 {"reference", "url", "amount"}: send the citizen to
        `url`, the provider's payment page. Without "amount", what settles the account today."""
        data = CHECKOUT.load(read_json(request))
        account = self._opened(kind, key, {"check": data["check"]})
        return json_response(self._checkout(account, data["amount"], data["check"]), 201)

    @http("GET", "/api/cuentas/<string:kind>/<string:key>/estado.pdf")
    @api(path=AccountPath, query=CheckQuery, answers={200: PDF}, errors=(404,))
    @http_errors
    def http_statement_pdf(self, request: Request, kind: str, key: str) -> Response:
        """The statement as a PDF, with its verification code."""
        account = self._opened(kind, key, request.args)
        statement = self.billing.statement(account)
        figures.DOCUMENTS.labels("statement").inc()
        return pdf_response(documents.statement_pdf(statement, self.billing.setting("CITY")),
                            f"estado-{account.key}.pdf")

    @http("GET", "/api/pagos/<string:reference>/recibo.pdf")
    @api(query=CheckQuery, answers={200: PDF}, errors=(404,))
    @http_errors
    def http_receipt_pdf(self, request: Request, reference: str) -> Response:
        """The receipt of a payment, for the holder of the paid account's check value."""
        receipt = self._receipt(reference, CHECK.load(request.args)["check"])
        figures.DOCUMENTS.labels("receipt").inc()
        return pdf_response(documents.receipt_pdf(receipt, self.billing.setting("CITY")),
                            f"recibo-{reference}.pdf")

    @http("GET", "/api/pagos/<string:reference>")
    @api(query=CheckQuery, answers={200: {"application/json": None}}, errors=(404,))
    @http_errors
    def http_receipt(self, request: Request, reference: str) -> Response:
        """GET /api/pagos/WEB-.../?check=7391 -> the receipt (a pending online payment: 404)."""
        return json_response(self._receipt(reference, CHECK.load(request.args)["check"]))

    @http("POST", "/api/cuentas/<string:kind>/<string:key>/envio", max_body=2048)
    @api(path=AccountPath, body=SendStatementSchema, answers={202: {"application/json": None}},
         errors=(404,))
    @http_errors
    def http_send_statement(self, request: Request, kind: str, key: str) -> Response:
        """POST {"check", "channel": "email", "email": "ana@example.com"} -> 202: the statement
        goes now, and each month from now on, to that address."""
        data = SEND.load(read_json(request))
        account = self._opened(kind, key, {"check": data["check"]})
        return json_response(self._send_statement(account, data), 202)

    @http("POST", "/payments/callback", max_body=8192)
    @api(answers={200: {"application/json": None}}, errors=(400, 404, 413))
    @http_errors
    def payment_callback(self, request: Request) -> Response:
        """The provider's signed word on a checkout (X-Signature: t=..,v1=..): approved is
        applied once; declined changes nothing but the checkout's status."""
        try:
            word = self.billing.provider.verify_callback(request.get_data(),
                                                         request.headers.get("X-Signature"))
        except BadCallback as error:
            raise ValidationError({"signature": [str(error)]}) from None
        return json_response(settle_checkout(self.billing, word))

    # ---- pages -----------------------------------------------------------------------------------

    @http("GET", "/pagos", html=True)
    @api(answers={200: HTML})
    @html_errors
    def lookup_page(self, request: Request) -> Response:
        """The citizen's start: which bill, its key and its check value."""
        return self._page("lookup.html", error=None, kind="predial", key="")

    @http("GET", "/pagos/cuenta", html=True)
    @api(query=LookupForm, answers={200: HTML, 400: HTML, 404: HTML})
    @html_errors
    def statement_page(self, request: Request) -> Response:
        try:
            data = LOOKUP.load(request.args)
            account = self.billing.app.look_up(data["kind"], data["key"], data["check"])
        except (ValidationError, AccountNotFound):
            return self._page("lookup.html", 404, kind=request.args.get("kind", "predial"),
                              key=request.args.get("key", "")[:32],
                              error="No encontramos una cuenta con esos datos. Revisa la clave "
                                    "y el dígito verificador (o la placa) de tu recibo.")
        return self._page("statement.html", s=self.billing.statement(account), check=data["check"])

    @http("POST", "/pagos/cuenta/pagar", html=True, max_body=2048)
    @api(form=PayForm, answers={303: None, 404: HTML})
    @html_errors
    def pay_page(self, request: Request) -> Response:
        """The "Pagar" button: a checkout at the provider, and the citizen sent there."""
        data = PAY_FORM.load(request.form)
        account = self.billing.app.look_up(data["kind"], data["key"], data["check"])
        started = self._checkout(account, data["amount"], data["check"])
        return Response(status=303, headers={"Location": started["url"]})

    @http("GET", "/pagos/retorno", html=True)
    @api(query=CallbackQuery, answers={200: HTML})
    @html_errors
    def return_page(self, request: Request) -> Response:
        """Where the provider sends the citizen back: what billing knows of the payment."""
        data = RETURN.load(request.args)
        found = records.checkout(self.billing.store, data["reference"])
        status = found["status"] if found else "unknown"
        text = {"approved": "Tu pago quedó registrado. Gracias.",
                "declined": "El banco rechazó el pago; no se hizo ningún cargo a tu cuenta.",
                }.get(status, "Estamos esperando la confirmación del banco. Vuelve a consultar "
                              "tu cuenta en unos minutos.")
        receipt = back = None
        if found and data["check"] and self._check_matches(found, data["check"]):
            query = urlencode({"check": data["check"]})
            back = "/pagos/cuenta?" + urlencode({"kind": found["kind"], "key": found["key"],
                                                 "check": data["check"]})
            if status == "approved":
                receipt = f"/api/pagos/{data['reference']}/recibo.pdf?{query}"
        return self._page("message.html", title="Pago", text=text,
                          tone="ok" if status == "approved" else "error",
                          receipt_url=receipt, back_url=back)

    @http("POST", "/pagos/cuenta/enviar", html=True, max_body=2048)
    @api(form=SendForm, answers={200: HTML, 404: HTML})
    @html_errors
    def send_page(self, request: Request) -> Response:
        form = {k: v for k, v in request.form.items() if v != ""}
        data = SEND_FORM.load(form)
        account = self.billing.app.look_up(data["kind"], data["key"], data["check"])
        self._send_statement(account, data)
        back = "/pagos/cuenta?" + urlencode({"kind": account.kind, "key": account.key,
                                             "check": data["check"]})
        return self._page("message.html", title="Estado de cuenta enviado", tone="ok",
                          text="Te enviamos el estado de cuenta, y te lo enviaremos cada mes.",
                          receipt_url=None, back_url=back)

    # ---- the work --------------------------------------------------------------------------------

    def _page(self, name: str, answer: int = 200, **context: Any) -> Response:
        return page(name, self.billing.setting("PAYMENTS_URL"), answer, **context)

    def _check_matches(self, checkout: dict[str, Any], check: str) -> bool:
        try:
            return self.billing.app.look_up(checkout["kind"], checkout["key"], check) is not None
        except AccountNotFound:
            return False

    def _opened(self, kind: str, key: str, query: Any) -> Account:
        path = ACCOUNT_PATH.load({"kind": kind, "key": key})
        check = CHECK.load(query)["check"]
        return self.billing.app.look_up(path["kind"], path["key"], check)

    def _receipt(self, reference: str, check: str) -> dict[str, Any]:
        try:
            applied = self.billing.app.payment(reference)
        except (AccountNotFound, ValueError):
            raise AccountNotFound("no payment with that reference and check value") from None
        if not applied.account.check_matches(check):
            raise AccountNotFound("no payment with that reference and check value")
        return self.billing.receipt(applied)

    def _checkout(self, account: Account, amount: Any, check: str) -> dict[str, Any]:
        billing = self.billing
        owed = billing.app.quote(account, billing.now().date())
        amount = amount or owed.total
        if amount <= 0:
            raise ValidationError({"amount": ["this account owes nothing today"]})
        reference = f"WEB-{uuid.uuid4().hex[:20].upper()}"
        records.open_checkout(billing.store, reference, account.kind, account.key, amount,
                              billing.now())
        public = billing.setting("PUBLIC_URL")
        started = billing.provider.start(
            reference, amount, f"{account.kind} {account.key}",
            f"{public}/pagos/retorno?" + urlencode({"check": check}),
            f"{billing.setting('CALLBACK_URL') or public}"
            "/payments/callback")
        records.started(billing.store, reference, started.id, started.url)
        return {"reference": reference, "url": started.url, "amount": str(amount)}

    def _send_statement(self, account: Account, data: dict[str, Any]) -> dict[str, Any]:
        records.set_contact(self.billing.store, account.kind, account.key, data["channel"],
                            data.get("email"), data.get("phone"))
        statement = self.billing.statement(account)
        return send_statement(self.billing, self.notifications, account, statement,
                              data, f"statement:{statement['number']}:{uuid.uuid4().hex[:8]}")


def settle_checkout(billing: Billing, word: Any) -> dict[str, Any]:
    """Apply the provider's word on a checkout (a callback, or its status asked later)."""
    found = (records.checkout(billing.store, word.reference)
             if REFERENCE.fullmatch(word.reference) else None)  # never ours: no NUL to the store
    if found is None:
        raise AccountNotFound(f"no checkout {word.reference}")
    if str(word.amount) != found["amount"]:
        raise ValidationError({"amount": [f"the checkout was for {found['amount']}"]})
    if word.status != "approved":
        records.settle(billing.store, word.reference, "declined", billing.now())
        if found["status"] != "declined":
            figures.DECLINED.labels(found["kind"]).inc()
        return {"reference": word.reference, "status": "declined"}
    applied = billing.app.pay(found["kind"], found["key"], word.reference, word.amount,
                              "online", word.paid_at.astimezone(billing.timezone),
                              authorization=word.authorization)
    records.settle(billing.store, word.reference, "approved", billing.now())
    if applied.first_time:
        figures.paid("online", found["kind"], word.amount)
    return {"reference": word.reference, "status": "applied" if applied.first_time
            else "applied_before"}


def send_statement(billing: Billing, notifications: RemoteService, account: Account,
                   statement: dict[str, Any], contact: dict[str, Any],
                   reference: str) -> dict[str, Any]:
    """Hand the statement's PDF to notifications (sent once per `reference`)."""
    pdf = documents.statement_pdf(statement, billing.setting("CITY"))
    figures.DOCUMENTS.labels("statement").inc()
    answer = notifications.call("send_document", {
        "reference": reference, "channel": contact["channel"],
        **({"email": contact["email"]} if contact["channel"] == "email"
           else {"phone": contact["phone"]}),
        "language": "es", "subject": f"Estado de cuenta {account.key}",
        "text": (f"Tu estado de cuenta de {account.key} al {statement['as_of']}: saldo "
                 f"{statement['totals']['balance']} MXN; para liquidar hoy "
                 f"{statement['to_pay']['amount']} MXN, válido hasta el "
                 f"{statement['to_pay']['until']}."),
        "filename": f"estado-{account.key}.pdf",
        "data": base64.b64encode(pdf).decode()})
    figures.STATEMENTS.labels(contact["channel"]).inc()
    return {"statement": statement["number"], "channel": contact["channel"],
            "status": answer.get("status") if isinstance(answer, dict) else None}


__all__ = ["CitizenDoors", "Schema", "send_statement", "settle_checkout"]
