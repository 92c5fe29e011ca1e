"""Each service's OpenAPI 3.1 document (GET /openapi.json), built with apispec from what the code
declares: every `http` entrypoint's method, URL rule, docstring and page flag, and what it adds
with `@api(...)` (its body, query, headers, answers per status, extra errors and credentials).

Every JSON error answer is the wire's error body (shared/contracts/errors.py), one component; the
chassis adds the errors any door may give (400 and 413 for a body, 404 for a path with values,
401/403 for a bearer token, 500, 503). How the schemas' fields read: apifields.py."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.apifields import SchemaNames, names_in, teach
from shared.chassis.http import HttpEntrypoint, http
from shared.contracts.errors import STATUS

JSON, HTML, PLAIN, XML = "application/json", "text/html", "text/plain", "text/xml"
FORM, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data"
PHOTOS = ("image/jpeg", "image/png", "image/webp")
BINARY = {"type": "string", "format": "binary"}

# Credentials. `ANYONE` among a door's `auth` means it also answers without any.
ANYONE, BEARER, ACCESS_TOKEN = "anyone", "bearer", "accessToken"
API_KEY, CHATBOT_SECRET, UPLOAD_TICKET = "open311ApiKey", "chatbotSecret", "uploadTicket"
SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description":
             "Staff and other systems: a JWT with roles and scopes (docs/access.md)."},
    ACCESS_TOKEN: {"type": "apiKey", "in": "header", "name": "X-Access-Token", "description":
                   "The citizen's access token of one report (also `?token=`)."},
    API_KEY: {"type": "apiKey", "in": "query", "name": "api_key", "description":
              "An Open311 client's key (OPEN311_API_KEYS), in the query or the form."},
    CHATBOT_SECRET: {"type": "apiKey", "in": "header", "name": "X-Chatbot-Secret",
                     "description": "The chatbot provider adapter's shared secret."},
    UPLOAD_TICKET: {"type": "apiKey", "in": "header", "name": "X-Upload-Ticket",
                    "description": "A citizen's upload ticket (POST /api/v1/upload-tickets)."},
}
ANSWER_HEADERS = {
    201: {"Location": "Where the new resource is."},
    303: {"Location": "Where to go."},
    401: {"WWW-Authenticate": "The scheme to authenticate with."},
    429: {"Retry-After": "Seconds to wait."},
    503: {"Retry-After": "Seconds to wait."},
}
ERROR_BODY = {
    "type": "object", "required": ["error", "errors"], "additionalProperties": False,
    "description": "Every error (docs/errors.md): `code` is for programs, `message` for people.",
    "properties": {
        "error": {"type": "object", "required": ["code", "message"],
                  "additionalProperties": False, "properties": {
                      "code": {"type": "string", "enum": sorted(STATUS)},
                      "message": {"type": "string"},
                      "fields": {"type": "object", "description": "Messages per field."},
                      "request_id": {"type": "string"}}},
        "errors": {"type": "object", "description": "The field messages, or {\"_\": [message]}."},
    },
}
RULE_PART = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
# A value in a URL as werkzeug's converters take it; `string` (the default): text without a slash.
CONVERTED = {"int": {"type": "integer"}, "float": {"type": "number"},
             "uuid": {"type": "string", "format": "uuid"}, "path": {"type": "string"}}
A_SEGMENT = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class Door:
    """What an entrypoint documents beyond its `http(...)`: schemas are marshmallow Schemas.

    `answers` maps a status to a Schema, a tuple of them (one of), a media type, a {media type:
    Schema or None} map, or None (no body). `formats` maps the suffix in the rule's last value
    (`requests.<fmt>`) to its media type: a path per format, JSON answers validated. `each`
    documents each value of a path parameter as a path of its own ({"name": {"assign": Door}})."""

    body: Any = None
    form: Any = None
    upload: tuple[str, ...] = ()
    query: Any = None
    headers: Any = None
    path: Any = None
    answers: Mapping[int, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    auth: tuple[str, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)
    error_body: Any = None
    each: Mapping[str, Mapping[str, Door]] = field(default_factory=dict)

    def over(self, other: Door) -> Door:
        """This door with what `other` declares."""
        return replace(self, **{f.name: getattr(other, f.name) for f in fields(Door)
                                if getattr(other, f.name)})


def api(**declared: Any) -> Callable[[Handler], Handler]:
    """Under `@http(...)`: `@api(body=OpenReportSchema, answers={201: OpenedSchema},
    auth=(BEARER,))`. Returns the handler itself, so it may sit above or below error wrappers."""
    door = Door(**declared)

    def mark(handler: Handler) -> Handler:
        handler.openapi_door = door  # type: ignore[attr-defined]
        return handler

    return mark


class ApiDocument:
    """GET /openapi.json for the service class that declares this mixin."""

    @http("GET", "/openapi.json")
    @api(answers={200: {JSON: {"type": "object", "required": ["openapi", "info", "paths"]}}})
    def openapi_document(self, request: Request) -> Response:
        """GET /openapi.json -> this service's OpenAPI 3.1 document (built once)."""
        service: Any = type(self)  # a class is hashable; mypy's Hashable check says otherwise
        return json_response(document(service))


# ---- building the document ---------------------------------------------------------------------


@functools.cache
def document(service: type[Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `service`'s HTTP entrypoints."""
    # apispec types the resolver as returning a name; it documents None as "write it inline".
    plugin = MarshmallowPlugin(schema_name_resolver=SchemaNames())  # type: ignore[arg-type]
    module_doc = (inspect.getdoc(sys.modules[service.__module__]) or "").split("\n")[0]
    spec = APISpec(title=f"Expediente {service.name}", version=_version(),
                   openapi_version="3.1.0", plugins=[plugin], info={"description": module_doc})
    teach(plugin)
    spec.components.schema("Error", ERROR_BODY)
    used: set[str] = set()
    tags: dict[str, str] = {}
    for name, entrypoint, handler, owner in entrypoints(service):
        door: Door = getattr(handler, "openapi_door", None) or Door()
        tags.setdefault(owner.__name__, (inspect.getdoc(owner) or "").split("\n")[0])
        for path, operation_id, media, each_door in paths(entrypoint.url, name, door):
            operation = build_operation(entrypoint, handler, each_door, path, media)
            if door.each:  # the docstring speaks of all of them: it is the description
                operation["description"] = inspect.getdoc(handler) or ""
                operation["summary"] = f"{entrypoint.method} {path}"
            spec.path(path=path, operations={entrypoint.method.lower(): {
                "operationId": operation_id, "tags": [owner.__name__], **operation}})
            used.update(s for s in each_door.auth if s != ANYONE)
    for scheme in sorted(used):
        spec.components.security_scheme(scheme, SCHEMES[scheme])
    for tag, description in sorted(tags.items()):
        spec.tag({"name": tag, "description": description})
    return spec.to_dict()


def entrypoints(service: type) -> Iterator[tuple[str, HttpEntrypoint, Callable, type]]:
    """(method name, entrypoint, handler, class that defines it), by URL and method."""
    found = []
    for name, handler in inspect.getmembers(service, callable):
        for entrypoint in getattr(handler, "nameko_entrypoints", ()):
            if isinstance(entrypoint, HttpEntrypoint):
                owner = next(cls for cls in service.__mro__ if name in vars(cls))
                found.append((entrypoint.url, entrypoint.method, name, entrypoint, handler, owner))
    for _, _, name, entrypoint, handler, owner in sorted(found, key=lambda f: f[:3]):
        yield name, entrypoint, handler, owner


def paths(rule: str, name: str, door: Door) -> Iterator[tuple[str, str, str | None, Door]]:
    """(OpenAPI path, operation id, the format's media type, the door) for each path the rule
    stands for: one, or one per value of an `each` parameter, or one per format."""
    path = RULE_PART.sub(lambda m: "{" + m.group("name") + "}", rule)
    for parameter, values in door.each.items():
        for value, variant in values.items():
            yield (path.replace("{" + parameter + "}", value), f"{name}_{value}", None,
                   door.over(variant))
    if door.each:
        return
    if not door.formats:
        yield path, name, None, door
        return
    last = RULE_PART.findall(rule)[-1][1]
    for suffix, media in door.formats.items():
        yield path.replace("{" + last + "}", suffix), f"{name}_{suffix}", media, door


def build_operation(entrypoint: HttpEntrypoint, handler: Callable, door: Door, path: str,
                    media: str | None) -> dict[str, Any]:
    text = inspect.getdoc(handler) or ""
    summary, _, description = text.partition("\n")
    operation: dict[str, Any] = {"summary": summary.strip(), "parameters": []}
    if description.strip():
        operation["description"] = description.strip()
    names = re.findall(r"{(\w+)}", path)
    declared = names_in(door.path)
    converters = {m["name"]: m["converter"] for m in RULE_PART.finditer(entrypoint.url)}
    for value in names:
        if value not in declared:
            operation["parameters"].append({"in": "path", "name": value, "required": True,
                                            "schema": CONVERTED.get(converters[value],
                                                                    A_SEGMENT)})
    for where, schema in (("path", door.path), ("query", door.query), ("header", door.headers)):
        if schema is not None:
            operation["parameters"].append({"in": where, "schema": schema})
    body = request_body(door)
    if body:
        operation["requestBody"] = body
    operation["responses"] = answers(entrypoint, door, bool(names), media)
    if door.auth:
        operation["security"] = [{} if s == ANYONE else {s: []} for s in door.auth]
    return operation


def request_body(door: Door) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if door.body is not None:
        content[JSON] = {"schema": door.body}
    for media in door.upload:
        content[media] = {"schema": BINARY}
    if door.form is not None:
        content[MULTIPART] = {"schema": door.form}
        if not door.upload:
            content[FORM] = {"schema": door.form}
    return {"required": bool(door.upload), "content": content} if content else None


def answers(entrypoint: HttpEntrypoint, door: Door, has_values: bool, media: str | None
            ) -> dict[str, Any]:
    declared = door.answers or {200: HTML if entrypoint.html else {JSON: {}}}
    found = {status: response(status, answer, media) for status, answer in declared.items()}
    errors = {500, 503, *door.errors}
    if door.body is not None or door.form is not None or door.upload:
        errors |= {400, 413}
    if door.query is not None or door.headers is not None or door.path is not None:
        errors.add(400)
    if has_values:
        errors.add(404)
    if BEARER in door.auth:
        errors |= {401, 403}
    error = door.error_body if door.error_body is not None else (
        HTML if entrypoint.html else {JSON: {"$ref": "#/components/schemas/Error"}})
    for status in sorted(errors - set(found)):
        found[status] = response(status, error, media)
    return {str(status): found[status] for status in sorted(found)}


def response(status: int, answer: Any, media: str | None) -> dict[str, Any]:
    """One status' Response Object (`answer` as Door.answers says)."""
    found: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    content: dict[str, Any]
    if isinstance(answer, str):
        content = {answer: {}}
    elif isinstance(answer, Mapping):
        content = {kind: ({"schema": schema} if schema is not None else {})
                   for kind, schema in answer.items()}
    elif isinstance(answer, tuple):
        content = {JSON: {"schema": {"oneOf": list(answer)}}}
    elif answer is not None:
        content = {JSON: {"schema": answer}}
    else:
        content = {}
    if media is not None and content:  # a format of Open311's: JSON keeps the schema
        schema = content.get(JSON, {})
        content = {media: schema if media.startswith(JSON) else {}}
    if content:
        found["content"] = content
    headers = ANSWER_HEADERS.get(status)
    if headers:
        found["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                            for name, text in headers.items()}
    return found


def _version() -> str:
    try:
        return importlib.metadata.version("expediente")
    except importlib.metadata.PackageNotFoundError:
        return "0"
