"""The error codes every service answers with, and the error that carries one across services.

An error crosses a service boundary as a code, never as a class name: tracking answers
`report_closed` and intake, calling it, answers its own caller the same status and code. Over
HTTP the body is `{"error": {"code", "message", "fields", "request_id"}, "errors": fields}`
(`errors` is the field messages alone, as clients read them before codes existed)."""

from __future__ import annotations

from typing import Any

# code -> HTTP status. The domain's DomainError codes (services/tracking/domainmodel.py) are here.
STATUS: dict[str, int] = {
    "invalid_input": 400,          # the body, a field or a header is not valid
    "invalid_command": 400,        # a well-formed command the report's rules refuse as given
    "unauthenticated": 401,
    "forbidden": 403,
    "not_assigned_crew": 403,      # a crew acting on a report assigned to another crew
    "not_found": 404,
    "method_not_allowed": 405,
    "domain_error": 409,           # the lifecycle refuses it (a DomainError with no finer code)
    "invalid_transition": 409,     # a step out of order (arrive before being dispatched)
    "report_closed": 409,
    "version_conflict": 409,       # someone else changed it meanwhile: retry on fresh state
    "already_exists": 409,         # a crew or material code (any code a client picks) is taken
    "in_progress": 409,            # the first request with this key is still being processed
    "nothing_owed": 409,           # billing: no open charge this discount or payment applies to
    "reference_reused": 409,       # billing: a payment reference already paid something else
    "not_reversible": 409,         # billing: a payment not on the account, or reversed already
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "idempotency_key_reused": 422,
    "too_many_requests": 429,      # slow down: Retry-After says when to come back
    "internal": 500,               # a failure of ours; the body says only the request id
    "bad_gateway": 502,            # a provider we called answered nonsense or refused
    "unavailable": 503,            # a dependency is down or overloaded: retry after a moment
}
MESSAGES: dict[str, str] = {
    "invalid_input": "the request is not valid",
    "unauthenticated": "a valid bearer token is needed",
    "forbidden": "you may not do this",
    "not_found": "not found",
    "method_not_allowed": "this method is not allowed here",
    "version_conflict": "the report changed meanwhile; try again",
    "payload_too_large": "the request body is too large",
    "unsupported_media_type": "this content type is not accepted here",
    "too_many_requests": "too many requests; try again later",
    "internal": "something failed on our side; quote the request id if you report it",
    "unavailable": "the service is not available right now; try again in a moment",
}
RETRY_AFTER_SECONDS = 5  # what a 503 tells the client to wait


class WireError(Exception):
    """An error with its code, a message for people and optional field messages.

    `WireError("report_closed", "the report is closed")`; `status` comes from the code (a code
    this service does not know keeps the status the other side gave, else 500)."""

    def __init__(self, code: str, message: str | None = None,
                 fields: dict[str, Any] | None = None, status: int | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code) or code.replace("_", " ")
        self.fields = fields or {}
        self.status = STATUS.get(code) or status or 500
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"WireError({self.code!r}, {self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """What an RPC reply carries (next to nameko's own keys)."""
        return {"code": self.code, "status": self.status, "message": self.message,
                "fields": self.fields}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WireError:
        fields = data.get("fields")
        status = data.get("status")
        return cls(str(data["code"]), str(data.get("message") or "") or None,
                   fields if isinstance(fields, dict) else None,
                   status if isinstance(status, int) else None)

    def document(self, request_id: str | None = None) -> dict[str, Any]:
        """The HTTP body of this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        if request_id:
            error["request_id"] = request_id
        return {"error": error, "errors": self.fields or {"_": [self.message]}}


def carries_code(data: Any) -> bool:
    """Whether an RPC reply's error names one of the wire's codes (else it is a bare failure)."""
    return isinstance(data, dict) and isinstance(data.get("code"), str) and bool(data["code"])
