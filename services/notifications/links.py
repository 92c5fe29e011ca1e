"""The links a message carries: the citizen's status page (tracking's), and notifications' own
confirmation and opt-out links, each naming a subscription and signed with LINK_SECRET so that
nobody can confirm or end a subscription they were not sent."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

TOKEN = re.compile(r"^([0-9a-f-]{36})\.([0-9a-f]{32})$")


class BadLink(ValueError):
    """A confirmation or opt-out token that this service did not sign."""


class Links:
    def __init__(self, secret: str, public_url: str, status_page_url: str) -> None:
        if not secret:
            raise ValueError("LINK_SECRET is required: it signs the confirmation and opt-out "
                             "links")
        self._key = secret.encode()
        self.public_url = public_url.rstrip("/")
        self.status_page_url = status_page_url.rstrip("/")

    def token(self, purpose: str, subscription_id: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{subscription_id}".encode(), hashlib.sha256)
        return f"{subscription_id}.{mac.hexdigest()[:32]}"

    def subscription_of(self, purpose: str, token: str) -> str:
        """The subscription a token names, if this service signed it for `purpose`."""
        found = TOKEN.match(token or "")
        if not found or not hmac.compare_digest(self.token(purpose, found.group(1)), token):
            raise BadLink("this link is not valid: copy it whole from the message")
        return found.group(1)

    def confirm_url(self, subscription_id: str) -> str:
        return f"{self.public_url}/confirmar/{self.token('confirm', subscription_id)}"

    def opt_out_url(self, subscription_id: str) -> str:
        return f"{self.public_url}/baja/{self.token('opt-out', subscription_id)}"

    def status_url(self, folio: str, access_token: str | None = None) -> str:
        url = f"{self.status_page_url}/{quote(folio, safe='')}"
        return f"{url}?token={quote(access_token, safe='')}" if access_token else url
