"""Each service's OpenAPI 3.1 document (shared/chassis/openapi.py): valid against the OpenAPI 3.1
schema, one operation for every HTTP door (a path per command, a path per Open311 format), the
wire's error body on every JSON error, the credentials each door takes, and the edge's fields as
precise as fields.py is: what the patterns refuse is what the edge refuses. Served at
GET /openapi.json by a real container (no broker, no database)."""

from __future__ import annotations

import re

import pytest
import requests
import schemathesis
from marshmallow import Schema
from nameko.containers import ServiceContainer
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from werkzeug.wrappers import Request, Response

from services.intake.service import IntakeService
from services.tracking.service import TrackingService
from services.tracking.write.commands import COMMANDS
from shared.chassis import apifields, health, openapi
from shared.chassis.http import http, json_response
from shared.chassis.openapi import BEARER, JSON, XML, Door, api
from shared.contracts.fields import Line, Text, text_problem
from tests.support import free_port
from tests.unit.test_access_doc import doors

SERVICES = {"tracking": TrackingService, "intake": IntakeService}
ERROR = {"$ref": "#/components/schemas/Error"}
POISON = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f", "\ufffe", "\uffff"]
BREAKS = ["\t", "\n", "\r", "\u2028", "\u2029"]


def operations(document: dict) -> dict[str, dict]:
    return {f"{method.upper()} {path}": operation
            for path, item in document["paths"].items() for method, operation in item.items()}


def component(document: dict, name: str) -> dict:
    return document["components"]["schemas"][name]


@pytest.mark.parametrize("name", SERVICES)
def test_the_document_is_valid_openapi_3_1(name):
    document = openapi.document(SERVICES[name])
    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)
    schemathesis.openapi.from_dict(document).validate()


@pytest.mark.parametrize("name", SERVICES)
def test_every_http_door_is_an_operation(name):
    documented = set(operations(openapi.document(SERVICES[name])))
    for door in doors(SERVICES[name]) - {"POST /reports/{folio}/{name}"}:
        if not door.startswith(("GET ", "POST ", "PUT ")):
            continue  # an RPC method
        if door.endswith(".{fmt}"):
            assert {door[:-5] + "json", door[:-5] + "xml"} <= documented, door
        else:
            assert door in documented, door


def test_each_command_is_a_path_of_its_own_with_its_schema():
    found = operations(openapi.document(TrackingService))
    for name in (*COMMANDS, "confirm", "dispute"):
        operation = found[f"POST /reports/{{folio}}/{name}"]
        assert operation["requestBody"]["content"][JSON]["schema"]["$ref"].startswith(
            "#/components/schemas/")
        assert "409" in operation["responses"]
    assert found["POST /reports/{folio}/assign"]["security"] == [{BEARER: []}]
    assert "security" not in found["POST /reports/{folio}/confirm"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_json_error_is_the_wires_error_body(name):
    for label, operation in operations(openapi.document(SERVICES[name])).items():
        for status, answer in operation["responses"].items():
            content = answer.get("content", {})
            if int(status) < 400 or JSON not in content or label == "GET /readyz":
                continue
            if "/open311/" in label:  # GeoReport's own format: [{"code", "description"}]
                assert content[JSON]["schema"]["type"] == "array", label
            else:
                assert content[JSON]["schema"] == ERROR, (label, status)


def test_open311_documents_its_json_and_its_xml():
    found = operations(openapi.document(IntakeService))
    as_json = found["GET /open311/v2/requests.json"]["responses"]["200"]["content"]
    as_xml = found["GET /open311/v2/requests.xml"]["responses"]["200"]["content"]
    assert as_json[JSON]["schema"]["items"] == {"$ref": "#/components/schemas/GeoReportRequest"}
    assert list(as_xml) == [XML]
    assert found["POST /open311/v2/requests.json"]["security"] == [{"open311ApiKey": []}]


def test_each_door_says_which_credential_it_takes():
    tracking, intake = (openapi.document(cls) for cls in (TrackingService, IntakeService))
    assert set(tracking["components"]["securitySchemes"]) == {"bearer", "accessToken"}
    assert set(intake["components"]["securitySchemes"]) == {
        "bearer", "accessToken", "open311ApiKey", "chatbotSecret", "uploadTicket"}
    assert operations(tracking)["GET /reports/{folio}"]["security"] == [
        {}, {"accessToken": []}, {"bearer": []}]
    found = operations(intake)
    assert found["POST /chatbot/webhook"]["security"] == [{"chatbotSecret": []}]
    assert found["POST /api/v1/photos"]["security"] == [{"uploadTicket": []}, {"bearer": []}]
    assert found["PUT /staff/services/{code}"]["responses"]["401"]["content"][JSON]["schema"] \
        == ERROR


def test_pages_are_html_and_metrics_plain_text():
    found = operations(openapi.document(IntakeService))
    assert list(found["GET /reportar/{code}"]["responses"]["200"]["content"]) == ["text/html"]
    assert list(found["GET /reportar/{code}"]["responses"]["404"]["content"]) == ["text/html"]
    assert list(found["GET /metrics"]["responses"]["200"]["content"]) == ["text/plain"]
    assert found["GET /folio"]["responses"]["303"]["headers"]["Location"]


def test_the_edges_fields_are_as_precise_as_fields_py():
    tracking, intake = (openapi.document(cls) for cls in (TrackingService, IntakeService))
    opened = component(tracking, "OpenReport")["properties"]
    assert opened["description"]["maxLength"] == 4000 and opened["description"]["minLength"] == 1
    assert opened["description"]["pattern"] == apifields.TEXT
    assert opened["service_code"]["pattern"] == apifields.LINE
    assert opened["media_urls"] == {"type": "array", "maxItems": 20, "items": {
        "type": "string", "format": "uri", "maxLength": 2000}}
    assert opened["attributes"]["maxProperties"] == 50
    assert opened["channel"]["enum"][:2] == ["web", "chatbot"]
    item = component(tracking, "Materials")["properties"]["items"]["items"]["properties"]
    assert item["quantity"]["exclusiveMinimum"] == 0
    assert "unit_cost" not in item  # the public door takes no prices (crews sets them over RPC)
    folio = operations(tracking)["GET /reports/{folio}"]["parameters"][0]
    assert folio["schema"]["pattern"] == "^[A-Z]{2,6}-[0-9]{4}-[0-9]{6,}$"
    search = {p["name"]: p["schema"] for p in operations(tracking)["GET /reports"]["parameters"]}
    assert re.match(search["bbox"]["pattern"], "20.5,-100.5,20.7,-100.3")
    assert search["service_code"]["type"] == ["string", "null"]
    contact = component(intake, "Contact")["properties"]
    assert contact["email"]["format"] == "email"
    assert contact["phone"]["pattern"] == "^\\+?[0-9][0-9 \\-]{6,19}$"
    key = operations(intake)["POST /api/v1/reports"]["parameters"][0]
    assert key["name"] == "Idempotency-Key" and key["required"] is True


@pytest.mark.parametrize("char", POISON + BREAKS)
def test_the_text_patterns_refuse_what_the_edge_refuses(char):
    text = f"Bache {char}profundo"
    for pattern, single_line in ((apifields.TEXT, False), (apifields.LINE, True)):
        refused = text_problem(text, single_line) is not None
        assert refused == (re.fullmatch(pattern, text) is None), (pattern, char)
    assert re.fullmatch(apifields.LINE, "Bache profundo, esquina Juárez 🕳️")


def test_the_document_is_built_once():
    assert openapi.document(TrackingService) is openapi.document(TrackingService)


# ---- served by a running container -------------------------------------------------------------


class NoteSchema(Schema):
    text = Text(200, min_length=1, required=True)
    author = Line(50, load_default=None)


class Clerk(health.Health, openapi.ApiDocument):
    """A small service: one documented door behind a bearer token, one per format."""

    name = "clerk"

    @http("POST", "/notes")
    @api(body=NoteSchema, answers={201: NoteSchema}, auth=(BEARER,))
    def post_note(self, request: Request) -> Response:
        """POST /notes {"text": "..."} -> 201 the note"""
        return json_response({"text": "hola"}, 201)

    @http("GET", "/notes.<string:fmt>")
    @api(formats={"json": JSON, "xml": XML}, answers={200: NoteSchema(many=True)})
    def list_notes(self, request: Request, fmt: str) -> Response:
        return json_response([])


@pytest.fixture(scope="module")
def clerk():
    port = free_port()
    container = ServiceContainer(Clerk, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                                         "AMQP_URI": "memory://"})
    container.start()
    yield f"http://127.0.0.1:{port}"
    container.stop()


def test_get_openapi_json_serves_the_document(clerk):
    answer = requests.get(f"{clerk}/openapi.json", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == JSON
    assert answer.json() == openapi.document(Clerk)
    found = operations(answer.json())
    assert set(found) == {"POST /notes", "GET /notes.json", "GET /notes.xml", "GET /healthz",
                          "GET /readyz", "GET /metrics", "GET /openapi.json"}
    post = found["POST /notes"]
    assert post["summary"] == 'POST /notes {"text": "..."} -> 201 the note'
    assert sorted(post["responses"]) == ["201", "400", "401", "403", "413", "500", "503"]
    assert component(answer.json(), "Note")["additionalProperties"] is False


def test_a_door_declared_twice_over_keeps_what_each_says():
    base = Door(body=NoteSchema, errors=(409,))
    assert base.over(Door(auth=(BEARER,))) == Door(body=NoteSchema, errors=(409,),
                                                    auth=(BEARER,))
