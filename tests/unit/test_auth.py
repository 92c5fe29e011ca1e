"""Who may do what: staff tokens verified, roles checked, the development key and Keycloak alike."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from nameko.containers import ServiceContainer, WorkerContext
from nameko.rpc import rpc
from nameko.testing.services import worker_factory
from werkzeug.wrappers import Request

from shared.chassis.auth import (
    ROLES,
    Auth,
    AuthError,
    Forbidden,
    Principal,
    TokenVerifier,
    Unauthenticated,
    WorkerAuth,
    main_mint,
    mint_token,
    requires,
)

LOCAL = {"JWT_ISSUER": "expediente-local", "JWT_AUDIENCE": "expediente",
         "JWT_SECRET": "queretaro-test-secret-of-at-least-32-bytes", "JWT_ALGORITHMS": "HS256",
         "JWT_JWKS_URL": None, "JWT_PUBLIC_KEY": None}
KEYCLOAK_ISSUER = "https://sso.example.gob.mx/realms/municipio"
KEYCLOAK = {"JWT_ISSUER": KEYCLOAK_ISSUER, "JWT_AUDIENCE": "expediente", "JWT_ALGORITHMS": "RS256"}


@pytest.fixture(autouse=True)
def no_jwt_environment(monkeypatch):
    """The machine's own JWT_* variables must not leak into these stories."""
    for key in LOCAL:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def realm_key() -> rsa.RSAPrivateKey:
    """The signing key of the municipality's Keycloak realm."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def jwks(private_key: rsa.RSAPrivateKey, kid: str = "realm-key-1") -> dict:
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def keycloak_token(private_key: rsa.RSAPrivateKey, kid: str = "realm-key-1", **claims) -> str:
    """An access token as Keycloak issues it: realm roles nested, scopes as one string."""
    now = int(time.time())
    body = {"iss": KEYCLOAK_ISSUER, "aud": "expediente", "sub": "f3c2-lucia", "iat": now,
            "exp": now + 300, "preferred_username": "lucia", "scope": "openid profile",
            "realm_access": {"roles": ["supervisor", "offline_access", "uma_authorization"]},
            **claims}
    return jwt.encode(body, private_key, algorithm="RS256", headers={"kid": kid})


class Guarded:
    name = "tracking"
    auth = Auth()


def hs256_by_hand(claims: dict, secret: bytes) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def worker_auth(config: dict, *, request: Request | None = None,
                context_data: dict | None = None) -> WorkerAuth:
    """What `self.auth` is inside one worker of a service configured with `config`."""
    container = ServiceContainer(Guarded, config)  # built, never started: no broker
    (provider,) = container.dependencies
    provider.setup()
    args = (request,) if request is not None else ()
    return provider.get_dependency(WorkerContext(container, None, None, args=args,
                                                 data=context_data or {}))


def bearer(token: str) -> str:
    return f"Bearer {token}"


# ---- verifying tokens ------------------------------------------------------------------------


def test_a_supervisor_token_from_the_local_key_verifies():
    token = mint_token("ana", ("supervisor",), department="obras", config=LOCAL)

    principal = TokenVerifier(LOCAL).verify(token)

    assert principal == Principal(subject="ana", roles=("supervisor",), department="obras",
                                  name="ana")


def test_the_embedded_default_needs_no_configuration_at_all():
    token = mint_token("ana", "operator")

    assert TokenVerifier().verify(token).roles == ("operator",)


def test_environment_variables_configure_both_ends_when_there_is_no_config(monkeypatch):
    monkeypatch.setenv("JWT_ISSUER", "municipio-de-queretaro")
    token = mint_token("ana", ("operator",))

    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "municipio-de-queretaro"
    assert TokenVerifier().verify(token).subject == "ana"


def test_an_expired_token_is_unauthenticated():
    token = mint_token("ana", ("supervisor",), ttl_seconds=-3600, config=LOCAL)

    with pytest.raises(Unauthenticated, match="expired") as caught:
        TokenVerifier(LOCAL).verify(token)
    assert caught.value.status == 401


def test_a_token_from_another_issuer_is_unauthenticated():
    token = mint_token("ana", ("supervisor",), config={**LOCAL, "JWT_ISSUER": "another-city"})

    with pytest.raises(Unauthenticated, match="not issued by expediente-local"):
        TokenVerifier(LOCAL).verify(token)


def test_a_token_for_another_audience_is_unauthenticated():
    token = mint_token("ana", ("supervisor",), config={**LOCAL, "JWT_AUDIENCE": "catastro"})

    with pytest.raises(Unauthenticated, match="not meant for expediente"):
        TokenVerifier(LOCAL).verify(token)


def test_a_token_signed_with_another_key_is_unauthenticated():
    forged = mint_token("ana", ("admin",),
                        config={**LOCAL, "JWT_SECRET": "somebody-elses-secret-of-32-bytes-or-more"})

    with pytest.raises(Unauthenticated, match="signature"):
        TokenVerifier(LOCAL).verify(forged)


def test_a_token_without_a_subject_is_unauthenticated():
    now = int(time.time())
    token = jwt.encode({"iss": "expediente-local", "aud": "expediente", "iat": now,
                        "exp": now + 60, "roles": ["admin"]}, LOCAL["JWT_SECRET"])

    with pytest.raises(Unauthenticated, match="sub"):
        TokenVerifier(LOCAL).verify(token)


def test_an_unsigned_token_is_unauthenticated():
    now = int(time.time())
    unsigned = jwt.encode({"iss": "expediente-local", "aud": "expediente", "sub": "mallory",
                           "iat": now, "exp": now + 60, "roles": ["admin"]}, None, algorithm="none")

    with pytest.raises(Unauthenticated, match="none"):
        TokenVerifier(LOCAL).verify(unsigned)


def test_garbage_is_unauthenticated():
    with pytest.raises(Unauthenticated):
        TokenVerifier(LOCAL).verify("not-a-jwt")


# ---- the municipality's identity provider (Keycloak, RS256) ----------------------------------


@pytest.mark.parametrize("as_given", [
    pytest.param(lambda pem: pem, id="PEM"),
    pytest.param(lambda pem: pem.replace("\n", "\\n"), id="PEM with escaped newlines"),
    pytest.param(lambda pem: "".join(pem.splitlines()[1:-1]), id="bare base64 as Keycloak shows"),
])
def test_rs256_tokens_verify_with_an_inline_public_key(realm_key, as_given):
    verifier = TokenVerifier({**KEYCLOAK, "JWT_PUBLIC_KEY": as_given(public_pem(realm_key))})

    principal = verifier.verify(keycloak_token(realm_key))

    assert principal.subject == "f3c2-lucia"
    assert principal.name == "lucia"


def test_keycloak_realm_roles_are_understood_and_its_own_roles_ignored(realm_key):
    verifier = TokenVerifier({**KEYCLOAK, "JWT_PUBLIC_KEY": public_pem(realm_key)})

    principal = verifier.verify(keycloak_token(
        realm_key, resource_access={"expediente": {"roles": ["auditor"]}}))

    assert principal.roles == ("supervisor", "auditor")
    assert principal.scopes == ("openid", "profile")


def test_an_inline_jwks_picks_the_key_the_token_names(realm_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = {"keys": jwks(other, "old-key")["keys"] + jwks(realm_key, "realm-key-1")["keys"]}
    verifier = TokenVerifier({**KEYCLOAK, "JWT_PUBLIC_KEY": json.dumps(keys)})

    assert verifier.verify(keycloak_token(realm_key, kid="realm-key-1")).roles == ("supervisor",)
    with pytest.raises(Unauthenticated, match="kid"):
        verifier.verify(keycloak_token(realm_key, kid="unknown-key"))


def test_a_jwks_url_is_read_through_pyjwkclient(realm_key, monkeypatch):
    fetched = []

    def fetch_data(client):  # stands in for the HTTPS request to Keycloak's certs endpoint
        fetched.append(client.uri)
        return jwks(realm_key)

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch_data)
    certs = f"{KEYCLOAK_ISSUER}/protocol/openid-connect/certs"
    verifier = TokenVerifier({**KEYCLOAK, "JWT_JWKS_URL": certs})

    assert verifier.verify(keycloak_token(realm_key)).subject == "f3c2-lucia"
    assert fetched == [certs]


def test_with_rs256_configured_the_development_key_opens_nothing(realm_key):
    verifier = TokenVerifier({**KEYCLOAK, "JWT_PUBLIC_KEY": public_pem(realm_key)})

    with pytest.raises(Unauthenticated, match="HS256 are not accepted"):
        verifier.verify(mint_token("mallory", ("admin",)))


def test_a_public_key_is_never_taken_for_an_hmac_secret(realm_key):
    """Algorithm confusion: an HS256 token 'signed' with the published public key."""
    pem = public_pem(realm_key)
    verifier = TokenVerifier({**KEYCLOAK, "JWT_ALGORITHMS": "RS256,HS256",
                              "JWT_SECRET": LOCAL["JWT_SECRET"], "JWT_PUBLIC_KEY": pem})
    now = int(time.time())
    claims = {"iss": KEYCLOAK_ISSUER, "aud": "expediente", "sub": "mallory", "iat": now,
              "exp": now + 60, "roles": ["admin"]}
    forged = hs256_by_hand(claims, secret=pem.encode())  # PyJWT itself refuses to sign this

    with pytest.raises(Unauthenticated):
        verifier.verify(forged)


def test_a_configuration_that_cannot_verify_anything_fails_at_startup():
    with pytest.raises(ValueError, match="JWT_JWKS_URL or JWT_PUBLIC_KEY"):
        TokenVerifier({**KEYCLOAK, "JWT_JWKS_URL": None, "JWT_PUBLIC_KEY": None})
    with pytest.raises(ValueError, match="JWT_ALGORITHMS"):
        TokenVerifier({**LOCAL, "JWT_ALGORITHMS": "none"})


# ---- roles and crews -------------------------------------------------------------------------


def test_a_crew_member_cannot_act_as_supervisor():
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(
        mint_token("pedro", ("crew",), crew_id="C-07", config=LOCAL))})

    with pytest.raises(Forbidden, match="supervisor") as caught:
        auth.require("supervisor")
    assert caught.value.status == 403
    assert isinstance(caught.value, AuthError)


def test_an_admin_passes_any_requirement():
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(
        mint_token("root", ("admin",), config=LOCAL))})

    assert auth.require("supervisor").subject == "root"
    assert auth.require("crew", crew_id="C-07", scopes=("events:read",)).subject == "root"


def test_a_crew_member_acts_only_on_their_own_crews_work():
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(
        mint_token("pedro", ("crew",), crew_id="C-07", config=LOCAL))})

    assert auth.require("crew", "supervisor", crew_id="C-07").crew_id == "C-07"
    with pytest.raises(Forbidden, match="C-08"):
        auth.require("crew", "supervisor", crew_id="C-08")


def test_a_supervisor_acts_on_any_crews_work():
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(
        mint_token("ana", ("supervisor",), config=LOCAL))})

    assert auth.require("crew", "supervisor", crew_id="C-08").subject == "ana"


def test_a_system_subscriber_needs_its_scope():
    token = mint_token("notifications", ("system",), scopes=("reports:read",), config=LOCAL)
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(token)})

    assert auth.require("system", scopes=("reports:read",)).scopes == ("reports:read",)
    with pytest.raises(Forbidden, match="billing:write"):
        auth.require("system", scopes=("billing:write",))


# ---- the nameko dependency -------------------------------------------------------------------


def test_http_callers_are_read_from_the_authorization_header():
    token = mint_token("ana", ("operator",), config=LOCAL)
    request = Request.from_values("/reports", method="POST",
                                  headers={"Authorization": bearer(token)})

    assert worker_auth(LOCAL, request=request).require("operator").subject == "ana"


def test_an_http_request_without_the_header_is_unauthenticated():
    request = Request.from_values("/reports", method="POST")

    with pytest.raises(Unauthenticated, match="no bearer token"):
        worker_auth(LOCAL, request=request).principal()


def test_a_header_in_another_scheme_is_unauthenticated():
    request = Request.from_values("/reports", headers={"Authorization": "Basic YW5hOnNlY3JldA=="})

    with pytest.raises(Unauthenticated, match="Bearer"):
        worker_auth(LOCAL, request=request).principal()


def test_rpc_callers_are_read_from_the_worker_context_data():
    token = mint_token("ana", ("supervisor",), config=LOCAL)

    auth = worker_auth(LOCAL, context_data={"authorization": bearer(token)})

    assert auth.principal().subject == "ana"


def test_an_rpc_call_without_context_data_is_unauthenticated():
    with pytest.raises(Unauthenticated):
        worker_auth(LOCAL).require("operator")


def test_the_token_is_verified_once_per_worker():
    auth = worker_auth(LOCAL, context_data={"authorization": bearer(
        mint_token("ana", ("supervisor",), config=LOCAL))})

    assert auth.principal() is auth.require("supervisor")


class Desk:
    """A service where only supervisors close reports."""

    name = "desk"
    auth = Auth()

    @rpc
    @requires("supervisor")
    def close_report(self, folio: str) -> dict:
        return {"folio": folio, "closed_by": self.auth.principal().subject}


def test_the_requires_decorator_lets_a_supervisor_close_a_report():
    token = mint_token("ana", ("supervisor",), config=LOCAL)
    desk = worker_factory(Desk, auth=worker_auth(LOCAL, context_data={
        "authorization": bearer(token)}))

    assert desk.close_report("QRO-2026-000001") == {"folio": "QRO-2026-000001",
                                                    "closed_by": "ana"}


def test_the_requires_decorator_stops_a_crew_member_before_the_method_runs():
    token = mint_token("pedro", ("crew",), crew_id="C-07", config=LOCAL)
    desk = worker_factory(Desk, auth=worker_auth(LOCAL, context_data={
        "authorization": bearer(token)}))

    with pytest.raises(Forbidden):
        desk.close_report("QRO-2026-000001")


def test_the_requires_decorator_keeps_the_method_an_rpc_entrypoint():
    container = ServiceContainer(Desk, {"AMQP_URI": "memory://"})

    assert [e.method_name for e in container.entrypoints] == ["close_report"]


# ---- the operators' command line -------------------------------------------------------------


def test_mint_token_prints_a_token_the_services_accept(capsys):
    assert main_mint(["--sub", "alice", "--role", "crew", "--crew-id", "C1",
                      "--department", "obras", "--ttl", "600"]) == 0

    principal = TokenVerifier().verify(capsys.readouterr().out.strip())
    assert (principal.subject, principal.roles, principal.crew_id, principal.department) == (
        "alice", ("crew",), "C1", "obras")


def test_mint_token_refuses_a_role_the_municipality_does_not_have():
    with pytest.raises(ValueError, match="mayor"):
        mint_token("alice", ("mayor",))
    assert "mayor" not in ROLES
