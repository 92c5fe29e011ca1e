"""The window's doors (a mixin of BillingService): a clerk of one area (predial, agua or multas)
reads an account, records a payment taken at the window, grants a discount the rules allow
(seniors, people with disabilities: the clerk and the reason are recorded), reverses a payment
and sets where the statements go. A clerk of another area is refused (403); admin passes.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response, read_json
from shared.chassis.auth import Forbidden, Principal, WorkerAuth
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc

from . import documents, records
from . import metrics as figures
from .citizen import pdf_response
from .dependencies import Billing
from .errors import ERRORS, http_errors
from .schemas import (
    AccountPath,
    ContactSchema,
    DiscountSchema,
    ReferencePath,
    ReversalSchema,
    WindowPaymentSchema,
)

CLERKS = ("billing_clerk",)  # and admin
JSON = {"application/json": None}
ACCOUNT_PATH, PAYMENT, DISCOUNT, REVERSAL, CONTACT = (
    AccountPath(), WindowPaymentSchema(), DiscountSchema(), ReversalSchema(), ContactSchema())


def clerk_of(auth: WorkerAuth, kind: str) -> Principal:
    """The caller, if a clerk of `kind`'s area (or admin): 403 otherwise."""
    principal = auth.require(*CLERKS)
    if "admin" not in principal.roles and principal.area != kind:
        raise Forbidden(f"{principal.subject} is a clerk of {principal.area or 'no area'}, "
                        f"not of {kind}")
    return principal


def actor(principal: Principal) -> str:
    return f"{principal.subject} ({principal.name})" if principal.name != principal.subject \
        else principal.subject


class WindowDoors:
    """/ventanilla/...: what a clerk does at the window, over HTTP and RPC alike."""

    billing: Billing
    auth: WorkerAuth

    @rpc(errors=ERRORS)
    def window_statement(self, kind: str, key: str) -> dict[str, Any]:
        """`billing.window_statement("predial", "14-001-0123-045")` -> the statement."""
        path = ACCOUNT_PATH.load({"kind": kind, "key": key})
        clerk_of(self.auth, path["kind"])
        return self.billing.statement(self.billing.app.account(path["kind"], path["key"]))

    @rpc(errors=ERRORS)
    def window_payment(self, kind: str, key: str, payment: dict[str, Any]) -> dict[str, Any]:
        """`window_payment("agua", "AG-001234", {"reference": "V3-2026-000123", "amount":
        "394.00"})` -> the receipt; the same reference again answers the same receipt."""
        path = ACCOUNT_PATH.load({"kind": kind, "key": key})
        principal = clerk_of(self.auth, path["kind"])
        data = PAYMENT.load(payment)
        billing = self.billing
        applied = billing.app.pay(path["kind"], path["key"], data["reference"], data["amount"],
                                  "window", billing.now(), by=actor(principal))
        if applied.first_time:
            figures.paid("window", path["kind"], data["amount"])
        return billing.receipt(applied)

    @rpc(errors=ERRORS)
    def grant_discount(self, kind: str, key: str, discount: dict[str, Any]) -> dict[str, Any]:
        """`grant_discount("predial", "14-001-0123-045", {"reason": "adulto_mayor"})`"""
        path = ACCOUNT_PATH.load({"kind": kind, "key": key})
        principal = clerk_of(self.auth, path["kind"])
        data = DISCOUNT.load(discount)
        account = self.billing.app.grant_discount(path["kind"], path["key"], data["reason"],
                                                  self.billing.now().date(), actor(principal))
        return self.billing.statement(account)

    @rpc(errors=ERRORS)
    def reverse_payment(self, reference: str, reversal: dict[str, Any]) -> dict[str, Any]:
        """`reverse_payment("V3-2026-000123", {"reason": "cheque sin fondos"})` -> statement."""
        data = REVERSAL.load(reversal)
        self.auth.require(*CLERKS)  # who asks first: no caller learns which references exist
        paid = self.billing.app.payment(_reference(reference))
        principal = clerk_of(self.auth, paid.account.kind)
        account = self.billing.app.reverse(reference, data["reason"],
                                           self.billing.now().date(), actor(principal))
        figures.REVERSALS.labels(account.kind).inc()
        return self.billing.statement(account)

    @rpc(errors=ERRORS)
    def set_statement_contact(self, kind: str, key: str, contact: dict[str, Any]
                              ) -> dict[str, Any]:
        """Where the account's monthly statement goes: {"channel": "whatsapp", "phone": ...}."""
        path = ACCOUNT_PATH.load({"kind": kind, "key": key})
        clerk_of(self.auth, path["kind"])
        data = CONTACT.load(contact)
        self.billing.app.account(path["kind"], path["key"])  # 404 for an unknown account
        records.set_contact(self.billing.store, path["kind"], path["key"], data["channel"],
                            data.get("email"), data.get("phone"))
        return {"kind": path["kind"], "key": path["key"], "channel": data["channel"]}

    # ---- HTTP ------------------------------------------------------------------------------------

    @http("GET", "/ventanilla/<string:kind>/<string:key>")
    @api(path=AccountPath, answers={200: JSON}, auth=(BEARER,), errors=(404,))
    @http_errors
    def http_window_statement(self, request: Request, kind: str, key: str) -> Response:
        return json_response(self.window_statement(kind, key))

    @http("POST", "/ventanilla/<string:kind>/<string:key>/pagos", max_body=2048)
    @api(path=AccountPath, body=WindowPaymentSchema, answers={201: JSON, 200: JSON},
         auth=(BEARER,), errors=(404, 409))
    @http_errors
    def http_window_payment(self, request: Request, kind: str, key: str) -> Response:
        """POST {"reference": "V3-2026-000123", "amount": "394.00"} -> 201 the receipt (200:
        this reference was applied before, and this is its receipt)."""
        receipt = self.window_payment(kind, key, read_json(request))
        return json_response(receipt, 201 if receipt["first_time"] else 200)

    @http("POST", "/ventanilla/<string:kind>/<string:key>/descuentos", max_body=1024)
    @api(path=AccountPath, body=DiscountSchema, answers={200: JSON}, auth=(BEARER,),
         errors=(404, 409))
    @http_errors
    def http_grant_discount(self, request: Request, kind: str, key: str) -> Response:
        return json_response(self.grant_discount(kind, key, read_json(request)))

    @http("POST", "/ventanilla/pagos/<string:reference>/cancelacion", max_body=2048)
    @api(path=ReferencePath, body=ReversalSchema, answers={200: JSON}, auth=(BEARER,),
         errors=(404, 409))
    @http_errors
    def http_reverse_payment(self, request: Request, reference: str) -> Response:
        return json_response(self.reverse_payment(reference, read_json(request)))

    @http("PUT", "/ventanilla/<string:kind>/<string:key>/contacto", max_body=1024)
    @api(path=AccountPath, body=ContactSchema, answers={200: JSON}, auth=(BEARER,),
         errors=(404,))
    @http_errors
    def http_set_contact(self, request: Request, kind: str, key: str) -> Response:
        return json_response(self.set_statement_contact(kind, key, read_json(request)))

    @http("GET", "/ventanilla/pagos/<string:reference>/recibo.pdf")
    @api(path=ReferencePath, answers={200: {"application/pdf": None}}, auth=(BEARER,),
         errors=(404,))
    @http_errors
    def http_window_receipt(self, request: Request, reference: str) -> Response:
        self.auth.require(*CLERKS)
        paid = self.billing.app.payment(_reference(reference))
        clerk_of(self.auth, paid.account.kind)
        receipt = self.billing.receipt(paid)
        figures.DOCUMENTS.labels("receipt").inc()
        return pdf_response(documents.receipt_pdf(receipt, self.billing.setting("CITY")),
                            f"recibo-{reference}.pdf")


def _reference(reference: str) -> str:
    return PAYMENT.load({"reference": reference, "amount": "1.00"})["reference"]
