"""Bearer-token identity for every service: verify JWTs, check roles, mint development tokens."""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request

from shared.chassis.secrets import DEVELOPMENT_SECRET, refusals, refuse_outside_development

ROLES = ("operator", "supervisor", "crew", "billing_clerk", "admin", "auditor", "system")
DEFAULTS = {"JWT_ISSUER": "expediente-local", "JWT_AUDIENCE": "expediente",
            "JWT_SECRET": DEVELOPMENT_SECRET, "JWT_ALGORITHMS": "HS256"}
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
LEEWAY_SECONDS = 30  # clock skew between the identity provider and our hosts
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_CACHE_SECONDS = 60.0


class AuthError(Exception):
    """Why a call may not go on; `status` is its HTTP status."""

    status = 401


class Unauthenticated(AuthError):
    """No token, or one that does not verify: HTTP 401."""

    status = 401


class Forbidden(AuthError):
    """A valid token whose roles or scopes do not allow this: HTTP 403."""

    status = 403


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and what the municipality lets them do."""

    subject: str
    roles: tuple[str, ...] = ()
    crew_id: str | None = None
    department: str | None = None
    area: str | None = None  # a billing clerk's area: predial, agua or multas
    scopes: tuple[str, ...] = ()
    name: str = ""

    def has_role(self, *roles: str) -> bool:
        """True if the principal holds any of `roles` (admin holds them all; none asked: True)."""
        return not roles or any(role in self.roles for role in (*roles, "admin"))


def authorize(principal: Principal, roles: Iterable[str] = (), *, crew_id: str | None = None,
              scopes: Iterable[str] = ()) -> Principal:
    """Return `principal` if it may act, else raise Forbidden.

    It needs one of `roles` and every one of `scopes`; admin passes everything. With `crew_id`,
    someone who qualifies only as `crew` must belong to that crew: crews act on their own work,
    supervisors on anybody's."""
    roles, scopes = tuple(roles), tuple(scopes)
    who = f"{principal.subject} (roles: {', '.join(principal.roles) or 'none'})"
    if "admin" in principal.roles:
        return principal
    if not principal.has_role(*roles):
        raise Forbidden(f"this needs one of the roles {', '.join(roles)}; {who} has none of them")
    qualifying = {role for role in principal.roles if not roles or role in roles}
    if crew_id is not None and qualifying <= {"crew"} and principal.crew_id != crew_id:
        raise Forbidden(f"only crew {crew_id} may do this; {who} belongs to crew "
                        f"{principal.crew_id or 'none'}")
    missing = [scope for scope in scopes if scope not in principal.scopes]
    if missing:
        raise Forbidden(f"this needs the scopes {', '.join(missing)}, which {who} lacks")
    return principal


def setting(config: Mapping[str, Any] | None, key: str) -> Any:
    """A JWT_* value from the config, else the environment, else its default.

    A key present but empty (`${JWT_AUDIENCE:}` in YAML gives None) means "none", not "default"."""
    if config is not None and key in config:
        return config[key]
    return os.environ.get(key, DEFAULTS.get(key))


class TokenVerifier:
    """Verifies bearer tokens against the configured issuer, audience and keys.

    HS* tokens verify with JWT_SECRET; RS*/ES*/PS* tokens with the keys of JWT_JWKS_URL or the
    JWT_PUBLIC_KEY given inline (PEM, certificate or JWKS JSON). Only JWT_ALGORITHMS are accepted,
    so a production setting of RS256 never honours tokens signed with the development secret."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.issuer = setting(config, "JWT_ISSUER")
        if not self.issuer:
            raise ValueError("JWT_ISSUER must name the identity provider that issues tokens")
        # Empty audience turns the check off: Keycloak's default access token says "account".
        self.audience = setting(config, "JWT_AUDIENCE") or None
        self.algorithms = _algorithms(setting(config, "JWT_ALGORITHMS") or "HS256")
        secret = setting(config, "JWT_SECRET") or None
        jwks_url = setting(config, "JWT_JWKS_URL") or None
        public_key = setting(config, "JWT_PUBLIC_KEY") or None
        if jwks_url and public_key:
            raise ValueError("set JWT_JWKS_URL or JWT_PUBLIC_KEY, not both")

        hmac = [a for a in self.algorithms if a.startswith("HS")]
        if hmac and not secret:
            raise ValueError(f"JWT_ALGORITHMS {hmac} needs a JWT_SECRET")
        # A development or short secret: the service's SecretsCheck refuses it outside
        # development mode (shared/chassis/secrets.py).
        self._secret = secret if hmac else None
        asymmetric = [a for a in self.algorithms if not a.startswith("HS")]
        if asymmetric and not (jwks_url or public_key):
            raise ValueError(f"JWT_ALGORITHMS {asymmetric} needs JWT_JWKS_URL or JWT_PUBLIC_KEY")
        # The client caches the key set and refetches it when a token names an unknown kid
        # (key rotation); a short timeout keeps a slow identity provider from holding workers.
        self._jwks_client = jwt.PyJWKClient(jwks_url, timeout=5) if jwks_url else None
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._jwks: jwt.PyJWKSet | None
        self._public_key: Any
        self._jwks, self._public_key = _inline_keys(public_key) if public_key else (None, None)

    def verify(self, token: str) -> Principal:
        """The principal a token speaks for; Unauthenticated if it does not verify.

        A verified token is remembered until it expires (at most VERIFIED_CACHE_SECONDS): a
        client that sends the same token on every call pays for the signature check once."""
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = (principal, min(expires, time.time() + VERIFIED_CACHE_SECONDS))
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token, self._key_for(token), algorithms=self.algorithms, issuer=self.issuer,
                audience=self.audience, leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"the token was not issued by {self.issuer}") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the token is not meant for {self.audience}") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not verify") from None
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the identity provider's keys could not be fetched") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        return self.principal_from(claims), float(claims["exp"])

    def principal_from(self, claims: Mapping[str, Any]) -> Principal:
        granted = [*_words(claims.get("roles")),
                   *_words((claims.get("realm_access") or {}).get("roles"))]
        if self.audience:  # Keycloak client roles live under the client's id
            granted += _words(((claims.get("resource_access") or {}).get(self.audience) or {})
                              .get("roles"))
        # Identity providers add roles of their own (offline_access, uma_authorization…).
        roles = tuple(dict.fromkeys(role for role in granted if role in ROLES))
        return Principal(
            subject=str(claims["sub"]),
            roles=roles,
            crew_id=claims.get("crew_id"),
            department=claims.get("department"),
            area=claims.get("area"),
            scopes=tuple(_words(claims.get("scope")) + _words(claims.get("scp"))),
            name=str(claims.get("name") or claims.get("preferred_username") or claims["sub"]),
        )

    def _key_for(self, token: str) -> Any:
        """The key for the token's own algorithm, so a public key is never used as an HMAC
        secret (algorithm confusion)."""
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthenticated(f"tokens signed with {algorithm} are not accepted here "
                                  f"(accepted: {', '.join(self.algorithms)})")
        if algorithm.startswith("HS"):
            return self._secret
        if self._jwks_client is not None:
            return self._jwks_client.get_signing_key_from_jwt(token).key
        if self._jwks is not None:
            kid = header.get("kid")
            keys = [key for key in self._jwks if kid is None or key.key_id == kid]
            if not keys:
                raise Unauthenticated(f"no configured key has the token's kid {kid!r}")
            return keys[0].key
        return self._public_key


def _algorithms(value: str | Iterable[str]) -> list[str]:
    algorithms = _words(value)
    known = get_default_algorithms()
    unknown = [a for a in algorithms if a not in known or a.lower() == "none"]
    if unknown or not algorithms:
        raise ValueError(f"JWT_ALGORITHMS has unusable algorithms: {unknown or value!r}")
    return algorithms


def _words(value: Any) -> list[str]:
    """A claim or setting that may be a list or a space- or comma-separated string."""
    if not value:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [str(item) for item in value]


def _inline_keys(text: str) -> tuple[jwt.PyJWKSet | None, Any]:
    """JWT_PUBLIC_KEY as (JWKS, None) or (None, public key): a JWKS or single JWK in JSON, a PEM
    public key or certificate, or the bare base64 key Keycloak's realm settings show."""
    text = text.strip().replace("\\n", "\n")  # environment variables often carry escaped newlines
    if text.startswith("{"):
        data = json.loads(text)
        return jwt.PyJWKSet.from_dict(data if "keys" in data else {"keys": [data]}), None
    if "-----BEGIN" not in text:
        text = f"-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----"
    if "CERTIFICATE" in text:
        return None, x509.load_pem_x509_certificate(text.encode()).public_key()
    return None, serialization.load_pem_public_key(text.encode())


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` value; Unauthenticated if there is none."""
    if not authorization:
        raise Unauthenticated("no bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class WorkerAuth:
    """What one worker gets as `self.auth`: the caller's principal, verified once per worker."""

    def __init__(self, verifier: TokenVerifier, worker_ctx: Any) -> None:
        self.verifier = verifier
        self.worker_ctx = worker_ctx
        self._principal: Principal | None = None

    def authorization(self) -> str | None:
        """The HTTP request's Authorization header; for RPC and events, the context data that
        `ClusterRpcProxy(config, context_data={"authorization": ...})` sends."""
        args = self.worker_ctx.args
        if args and isinstance(args[0], Request):
            return args[0].headers.get("Authorization")
        return self.worker_ctx.data.get("authorization")

    def principal(self) -> Principal:
        if self._principal is None:
            self._principal = self.verifier.verify(bearer_token(self.authorization()))
        return self._principal

    def require(self, *roles: str, crew_id: str | None = None,
                scopes: Iterable[str] = ()) -> Principal:
        """The caller, if it holds one of `roles` (see `authorize`); else 401 or 403."""
        return authorize(self.principal(), roles, crew_id=crew_id, scopes=scopes)


class Auth(DependencyProvider):
    """Declare `auth = Auth()` on a service; workers call `self.auth.require("supervisor")`."""

    def setup(self) -> None:
        self.verifier = TokenVerifier(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> WorkerAuth:
        return WorkerAuth(self.verifier, worker_ctx)


def requires(*roles: str, scopes: Iterable[str] = (),
             attr: str = "auth") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Check the caller's roles before an entrypoint runs; `self.auth.principal()` then gives it.

    On HTTP methods put it beneath the decorator that maps errors, so AuthError becomes 401/403."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)  # also carries nameko's entrypoint marks, whichever goes first
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            getattr(self, attr).require(*roles, scopes=scopes)
            return method(self, *args, **kwargs)

        return checked

    return decorate


def mint_token(subject: str, roles: Iterable[str] | str | None, *, crew_id: str | None = None,
               department: str | None = None, area: str | None = None,
               scopes: Iterable[str] = (),
               ttl_seconds: int = 3600, config: Mapping[str, Any] | None = None) -> str:
    """A token signed with the local HS256 key (JWT_SECRET), for the CLI, demos and tests.

    Outside development mode it refuses (UnsafeSecret) to sign with a development or short key."""
    roles = _words(roles)
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"unknown roles {unknown}; known: {', '.join(ROLES)}")
    secret = setting(config, "JWT_SECRET")
    if not secret:
        raise ValueError("JWT_SECRET is empty: there is no local key to sign with")
    problems = refusals({"JWT_SECRET": secret, "JWT_ALGORITHMS": "HS256"}, only={"JWT_SECRET"})
    refuse_outside_development(problems, "expediente will not sign a token")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_seconds,
                              "jti": uuid.uuid4().hex, "roles": roles}
    optional = {"iss": setting(config, "JWT_ISSUER"), "aud": setting(config, "JWT_AUDIENCE"),
                "crew_id": crew_id, "department": department, "area": area,
                "scope": " ".join(scopes)}
    claims.update({key: value for key, value in optional.items() if value})
    return jwt.encode(claims, secret, algorithm="HS256")


def main_mint(argv: list[str] | None = None) -> int:
    """`expediente mint-token --sub alice --role supervisor [--crew-id C1] [--department obras]`"""
    parser = argparse.ArgumentParser(
        prog="expediente mint-token",
        description="Print a development token signed with the local key (JWT_SECRET).")
    parser.add_argument("--sub", required=True, help="who the token speaks for, e.g. alice")
    parser.add_argument("--role", action="append", required=True, choices=ROLES,
                        help="a role; repeat for several")
    parser.add_argument("--crew-id", help="the crew of a crew member, e.g. C-07")
    parser.add_argument("--department", help="a supervisor's department, e.g. obras")
    parser.add_argument("--area", help="a billing clerk's area: predial, agua or multas")
    parser.add_argument("--scope", action="append", default=[], help="a scope; repeatable")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    print(mint_token(args.sub, args.role, crew_id=args.crew_id, department=args.department,
                     area=args.area, scopes=args.scope, ttl_seconds=args.ttl))
    return 0
