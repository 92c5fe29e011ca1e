"""No shipped secret opens a door: outside development mode a service refuses to start with one.

Development mode is `EXPEDIENTE_ENV=development` in the environment, which `make run`, the tests
and the benchmarks set, and nothing else: no config file, no manifest. Everywhere else each
setting in SECRETS must hold a real secret, or `nameko run` stops with one line naming it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener

log = logging.getLogger(__name__)

MODE_VARIABLE = "EXPEDIENTE_ENV"
DEVELOPMENT = "development"

# The values services/*/config.yaml ship so that `make run` works with no setup: public, so they
# must open nothing outside development mode.
DEVELOPMENT_SECRET = "expediente-development-secret-change-me"  # JWT_SECRET
CHATBOT_DEVELOPMENT_SECRET = "expediente-chatbot-dev"
OPEN311_DEMO_KEY = "expediente-demo-key"
UPLOAD_TICKET_DEVELOPMENT_SECRET = "expediente-upload-tickets-dev"  # intake's photo tickets
LINK_DEVELOPMENT_SECRET = "expediente-notification-links-dev"  # notifications' confirm/opt-out
PROVIDER_DEVELOPMENT_TOKEN = "expediente-fake-provider"  # the local fake SMS/WhatsApp provider
PAYMENTS_DEVELOPMENT_SECRET = "expediente-fake-payments-dev"  # the local fake payment gateway
DOCUMENT_DEVELOPMENT_SECRET = "expediente-billing-documents-dev"  # receipts' verification codes
# What an example file or a tutorial says to replace, refused in every setting below.
PLACEHOLDERS = ("change-me", "changeme", "change_me", "secret", "password")


def development_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True only when EXPEDIENTE_ENV is exactly `development` (make run, the tests)."""
    return (os.environ if environ is None else environ).get(MODE_VARIABLE) == DEVELOPMENT


class UnsafeSecret(SystemExit):
    """A development or guessable secret outside development mode: the process must not go on.

    A SystemExit, so that `nameko run` (and the CLI) end with this one line and status 1."""


Lookup = Callable[[str, str | None], Any]  # a setting's value, as the service reads it


def _always(lookup: Lookup, calls_others: bool) -> bool:
    return True


def _accepts_hmac(lookup: Lookup, calls_others: bool) -> bool:
    """JWT_SECRET verifies tokens only when an HS* algorithm is accepted (auth.TokenVerifier)."""
    algorithms = str(lookup("JWT_ALGORITHMS", "HS256") or "HS256")
    return any(a.upper().startswith("HS") for a in algorithms.replace(",", " ").split())


def _calls_others(lookup: Lookup, calls_others: bool) -> bool:
    return calls_others


def _whole(text: str) -> list[str]:
    return [text]


def _api_keys(text: str) -> list[str]:
    """'name:key,name:key' -> the keys (as services/intake/open311/http.parse_api_keys reads it)."""
    return [key for key in (part.strip().rpartition(":")[2] for part in text.split(",")) if key]


def _uri_password(text: str) -> list[str]:
    password = urlsplit(text).password
    return [password] if password else []


@dataclass(frozen=True)
class Secret:
    """A setting that must hold a real secret outside development mode.

    Empty means the door it guards stays shut (no chatbot, no Open311 client), unless `required`:
    then the service would fall back on something worse (SERVICE_TOKEN: a token it signs itself)."""

    setting: str
    development: tuple[str, ...] = ()  # the public values shipped for development
    min_length: int = 0  # bytes; anything shorter can be guessed
    required: bool = False
    why_required: str = ""
    default: str | None = None  # what the code uses when neither config nor environment say
    applies: Callable[[Lookup, bool], bool] = _always
    values: Callable[[str], list[str]] = _whole  # the secrets inside the setting's text
    part: str = ""  # what each of them is, when not the whole text: "key", "password"


# One line per setting; a service checks the ones its configuration (or environment) has.
SECRETS: tuple[Secret, ...] = (
    Secret("JWT_SECRET", (DEVELOPMENT_SECRET,), min_length=32, default=DEVELOPMENT_SECRET,
           applies=_accepts_hmac),
    Secret("SERVICE_TOKEN", required=True, applies=_calls_others,
           why_required="this service would sign its own system token with the local key"),
    Secret("CHATBOT_SECRET", (CHATBOT_DEVELOPMENT_SECRET,), min_length=32),
    Secret("OPEN311_API_KEYS", (OPEN311_DEMO_KEY,), min_length=16, values=_api_keys, part="key"),
    Secret("UPLOAD_TICKET_SECRET", (UPLOAD_TICKET_DEVELOPMENT_SECRET,), min_length=32),
    Secret("AMQP_URI", ("guest",), values=_uri_password, part="password", required=True,
           why_required="the service has no broker to reach"),
    Secret("LINK_SECRET", (LINK_DEVELOPMENT_SECRET,), min_length=32),
    Secret("SMS_API_TOKEN", (PROVIDER_DEVELOPMENT_TOKEN,)),
    Secret("WHATSAPP_API_TOKEN", (PROVIDER_DEVELOPMENT_TOKEN,)),
    Secret("SMTP_PASSWORD"),
    Secret("PAYMENTS_SECRET", (PAYMENTS_DEVELOPMENT_SECRET,), min_length=24),
    Secret("DOCUMENT_SECRET", (DOCUMENT_DEVELOPMENT_SECRET,), min_length=32),
    Secret("POSTGRES_PASSWORD"),
    Secret("AWS_SECRET_ACCESS_KEY"),
)


def refusals(config: Mapping[str, Any], *, calls_others: bool = False,
             only: Collection[str] | None = None,
             environ: Mapping[str, str] | None = None) -> list[str]:
    """Why each secret in `config` would be unsafe outside development mode (empty: none).

    `calls_others`: the service calls another over RPC (so it needs its own SERVICE_TOKEN)."""
    environ = os.environ if environ is None else environ

    def lookup(key: str, default: str | None = None) -> Any:
        """As auth.setting reads it: the config's value (even empty), else the environment's."""
        return config[key] if key in config else environ.get(key, default)

    found = []
    for secret in SECRETS:
        if only is not None and secret.setting not in only:
            continue
        if not secret.applies(lookup, calls_others):
            continue
        text = str(lookup(secret.setting, secret.default) or "")
        if not text and secret.required:
            found.append(f"{secret.setting} is empty, so {secret.why_required}")
        for value in secret.values(text) if text else ():
            problem = _problem(secret, value)
            if problem:
                found.append(problem)
    return found


def _problem(secret: Secret, value: str) -> str | None:
    """Why one value of a setting is unsafe, or None. A weak value is never shown: it may be a
    real secret; a published one is, to say which."""
    if value in secret.development or value.lower() in PLACEHOLDERS:
        what = f"has the {secret.part}" if secret.part else "is"
        return f"{secret.setting} {what} {value!r}, a value published for development"
    if len(value.encode()) < secret.min_length:
        what = f"has a {secret.part}" if secret.part else "is"
        return (f"{secret.setting} {what} shorter than {secret.min_length} bytes, which can be "
                "guessed")
    return None


def refuse_outside_development(problems: list[str], refusal: str) -> None:
    """Raise UnsafeSecret for `problems` unless in development mode (where they are expected);
    `refusal` says what is refused: "intake will not start", "will not sign a token"."""
    if not problems or development_mode():
        return
    raise UnsafeSecret(
        f"{refusal} outside development mode ({MODE_VARIABLE} is not {DEVELOPMENT}): "
        f"{'; '.join(problems)}. Set real values (deploy/k8s/README.md lists them), or "
        f"{MODE_VARIABLE}={DEVELOPMENT} on a developer's machine only.")


class SecretsCheck(DependencyProvider):
    """Declare `secrets_check = SecretsCheck()` on a service: outside development mode it will
    not start with a development, placeholder or guessable secret in its configuration."""

    def setup(self) -> None:
        # A service that calls another listens for replies: it needs a SERVICE_TOKEN of its own.
        calls_others = any(isinstance(ext, ReplyListener) for ext in self.container.extensions)
        problems = refusals(self.container.config, calls_others=calls_others)
        refuse_outside_development(problems, f"{self.container.service_name} will not start")
        if problems:
            log.warning("development mode (%s=%s): accepting %s", MODE_VARIABLE, DEVELOPMENT,
                        ", ".join(sorted({p.split()[0] for p in problems})))

    def get_dependency(self, worker_ctx: Any) -> bool:
        """True in development mode."""
        return development_mode()
