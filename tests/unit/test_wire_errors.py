"""Errors cross services as codes: tracking's error table, the RPC reply that carries a code, and
the caller that raises the same code again (no broker: the reply is built and read in memory)."""

from __future__ import annotations

import sqlite3
import sys

import amqp.exceptions
import eventsourcing.persistence as es
import kombu.exceptions
import psycopg
import psycopg_pool
import pytest
from eventsourcing.persistence import RecordConflictError
from marshmallow import ValidationError
from nameko.exceptions import RemoteError, UnknownService

from services.intake.errors import ERRORS as INTAKE_ERRORS
from services.tracking import domainmodel
from services.tracking.errors import ERRORS
from services.tracking.write.application import ReportNotFound
from shared.chassis.auth import Forbidden, Unauthenticated
from shared.chassis.logredact import redact
from shared.chassis.rpc import error_of
from shared.chassis.rpcclient import RpcTimeout, reply_of
from shared.contracts.errors import STATUS, WireError

TRACKING_ERRORS = [
    (ValidationError({"description": ["Missing data for required field."]}), 400,
     "invalid_input"),
    (domainmodel.InvalidCommand("a reason is required to reopen a report"), 400,
     "invalid_command"),
    (Unauthenticated("no bearer token"), 401, "unauthenticated"),
    (Forbidden("crew members act on their own crew's work"), 403, "forbidden"),
    (PermissionError("the access token does not open this report"), 403, "forbidden"),
    (domainmodel.NotAssignedCrew("crew C-2 is not assigned"), 403, "not_assigned_crew"),
    (ReportNotFound("QRO-2026-999999"), 404, "not_found"),
    (KeyError("unknown command 'fly'"), 404, "not_found"),
    (domainmodel.InvalidTransition("cannot arrive before being dispatched"), 409,
     "invalid_transition"),
    (domainmodel.ReportClosed("the report is closed"), 409, "report_closed"),
    (RecordConflictError("duplicate key value violates unique constraint"), 409,
     "version_conflict"),
    (psycopg.OperationalError("the database system is shutting down"), 503, "unavailable"),
]


def raised(exc: BaseException) -> tuple:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def test_every_domain_error_code_is_a_wire_code():
    codes = {cls.code for cls in vars(domainmodel).values()
             if isinstance(cls, type) and issubclass(cls, domainmodel.DomainError)}
    assert codes and codes <= set(STATUS)


@pytest.mark.parametrize(("exc", "status", "code"), TRACKING_ERRORS,
                         ids=[code for _, _, code in TRACKING_ERRORS])
def test_a_tracking_error_reaches_the_caller_with_its_code(exc, status, code):
    reply = {"result": None, "error": error_of(raised(exc), ERRORS)}
    assert reply["error"]["exc_type"] == type(exc).__name__  # nameko's own clients still read it

    with pytest.raises(WireError) as caught:
        reply_of(reply)

    assert (caught.value.status, caught.value.code) == (status, code)


def test_field_messages_travel_with_the_code():
    reply = {"error": error_of(raised(ValidationError({"limit": ["too big"]})), ERRORS)}
    with pytest.raises(WireError) as caught:
        reply_of(reply)
    assert caught.value.fields == {"limit": ["too big"]}


def test_an_error_without_a_code_stays_a_remote_error_and_its_text_is_not_a_message():
    reply = {"error": error_of(raised(RuntimeError("internal detail")), ERRORS)}
    assert "code" not in reply["error"]
    with pytest.raises(RemoteError):
        reply_of(reply)


def test_an_unknown_key_error_does_not_tell_the_caller_the_key():
    error = ERRORS.wire(KeyError("postgres_password"))
    assert error.code == "not_found" and "postgres" not in error.message


@pytest.mark.parametrize(("line", "logged"), [
    ("GET /folio/QRO-2026-000123?token=abc123 HTTP/1.1",
     "GET /folio/QRO-2026-000123?token=[redacted] HTTP/1.1"),
    ("GET /open311/v2/requests.json?api_key=k1&status=open HTTP/1.1",
     "GET /open311/v2/requests.json?api_key=[redacted]&status=open HTTP/1.1"),
    ("GET /x?lang=es&Access_Token=t&api%5Fkey=k&key=1&secret=s&password=p&folio=F HTTP/1.1",
     "GET /x?lang=es&Access_Token=[redacted]&api%5Fkey=[redacted]&key=[redacted]"
     "&secret=[redacted]&password=[redacted]&folio=F HTTP/1.1"),
    ("GET /healthz HTTP/1.1", "GET /healthz HTTP/1.1"),
])
def test_secrets_in_logged_urls_are_redacted(line, logged):
    assert redact(line) == logged


@pytest.mark.parametrize("down", [
    psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
    psycopg.OperationalError("connection refused"),
    es.OperationalError("server closed the connection unexpectedly"),
    sqlite3.OperationalError("database is locked"),
    kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
    amqp.exceptions.RecoverableConnectionError("connection already closed"),
    UnknownService("tracking"),
    RpcTimeout("tracking.open_report did not answer in 10 s"),
    RemoteError("RuntimeError", "boom"),
], ids=lambda exc: type(exc).__name__)
def test_a_dependency_that_is_down_is_unavailable_never_a_500(down):
    for table in (ERRORS, INTAKE_ERRORS):
        error = table.wire(down)
        assert (error.status, error.code) == (503, "unavailable")
        assert str(down) not in error.message
