"""Open311 GeoReport v2 at the edge, without a broker: what a client's form and query become, and
what every document looks like once written as XML (read back with a real XML parser) or JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.exceptions import RemoteError
from nameko.exceptions import UnknownService as ServiceDown
from werkzeug.datastructures import MultiDict

from services.intake.catalog import ServiceDefinition
from services.intake.open311 import documents as open311_docs
from services.intake.open311 import format as open311
from services.intake.open311.format import Open311Error
from services.intake.open311.http import Settings, parse_api_keys, problem
from shared.chassis.rpcclient import RpcTimeout
from shared.contracts.errors import WireError

MX = ZoneInfo("America/Mexico_City")
NOW = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
DRAIN = ServiceDefinition.from_dict({
    "code": "drenaje", "name": "Drenaje obstruido", "group": "Agua y drenaje",
    "department": "agua_potable", "description": "Coladera tapada", "sla_hours": 24,
    "keywords": ["drenaje", "coladera"],
    "questions": [
        {"code": "problema", "datatype": "multivaluelist", "description": "¿Qué pasa?",
         "required": True, "order": 1, "values": [{"key": "tapado", "name": "Tapado"},
                                                  {"key": "olor", "name": "Mal olor"}]},
        {"code": "vecinos", "datatype": "number", "description": "¿Cuántas casas?", "order": 2},
    ]})
OTHER = ServiceDefinition(code="otro", name="Otro", group="Otros", department="atencion")
ROW = {"folio": "QRO-2026-000123", "service_code": "drenaje", "service_name": "Drenaje obstruido",
       "status": "closed", "step": "closed", "step_label": "Cerrado", "resolution": "fixed",
       "resolution_label": "Resuelto", "department": "agua_potable",
       "description": "Coladera tapada <frente> a la escuela & el mercado",
       "address": "Av. Zaragoza 10", "lat": 20.5931, "long": -100.392,
       "opened_at": "2026-02-27T16:00:00+00:00", "updated_at": "2026-02-28T16:30:00.123+00:00",
       "due_at": "2026-02-28T16:00:00+00:00", "closed_at": "2026-02-28T16:30:00+00:00",
       "media_url": "https://fotos.example/1.jpg", "status_notes": "Cerrado: Resuelto"}


def form(*pairs: tuple[str, str]) -> MultiDict:
    return MultiDict(list(pairs))


def xml(root: str, data) -> ET.Element:
    body = open311_docs.to_xml(root, data)
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(body)


# ---- what a client sends -----------------------------------------------------------------------


def test_attributes_come_as_single_values_and_as_lists_for_a_multivaluelist():
    answers = open311.parse_attributes(form(
        ("attribute[vecinos]", "3"), ("attribute[problema][]", "tapado"),
        ("attribute[problema][]", "olor"), ("api_key", "k")))
    assert answers == {"vecinos": "3", "problema": ["tapado", "olor"]}


def test_a_single_choice_sent_with_brackets_is_still_a_list():
    assert open311.parse_attributes(form(("attribute[problema][]", "olor"))) == {
        "problema": ["olor"]}


def test_a_malformed_attribute_key_is_a_400():
    with pytest.raises(Open311Error) as caught:
        open311.parse_attributes(form(("attribute[problema", "olor")))
    assert caught.value.status == 400 and "attribute[problema" in caught.value.descriptions[0]


def test_a_pothole_posted_as_the_spec_shows_becomes_a_submission_with_private_contact():
    submission = open311.submission_from_form(form(
        ("api_key", "xyz"), ("service_code", "drenaje"), ("lat", "20.5931"),
        ("long", "-100.392"), ("address_string", "Av. Zaragoza 10"),
        ("email", "ana@example.com"), ("device_id", "tt222111"), ("account_id", "123456"),
        ("first_name", "Ana"), ("last_name", "López"), ("phone", "+52 442 123 4567"),
        ("description", "Coladera tapada"), ("media_url", "https://fotos.example/1.jpg"),
        ("attribute[problema][]", "tapado"), ("attribute[problema][]", "olor")), DRAIN)
    assert submission.channel == "open311" and submission.service_code == "drenaje"
    assert submission.location == {"lat": 20.5931, "long": -100.392, "address": "Av. Zaragoza 10"}
    assert submission.answers == {"problema": ["tapado", "olor"]}
    assert submission.media_urls == ["https://fotos.example/1.jpg"]
    assert submission.contact["email"] == "ana@example.com"
    assert submission.contact["phone"] == "+52 442 123 4567"
    assert "device_id" not in submission.contact and "account_id" not in submission.contact
    assert submission.idempotency_key is None


def test_without_a_description_the_service_name_stands_in_and_no_contact_is_none():
    submission = open311.submission_from_form(form(("address_id", "CAT-77")), OTHER)
    assert submission.description == "Otro"
    assert submission.location == {"address_id": "CAT-77"}
    assert submission.contact is None


@pytest.mark.parametrize("pairs, expected", [
    ((), "a location is required"),
    ((("lat", "20.5"),), "lat and long must be sent together"),
    ((("lat", "95"), ("long", "-100")), "lat:"),
    ((("lat", "nan"), ("long", "-100")), "lat:"),
    ((("address_string", "x" * 301),), "address_string:"),
    ((("address_id", "1"), ("description", "x" * 4001)), "description: at most 4,000"),
    ((("address_id", "1"), ("email", "not-an-email")), "email:"),
    ((("address_id", "1"), ("phone", "call me")), "phone:"),
    ((("address_id", "1"), ("media_url", "javascript:alert(1)")), "media_url:"),
    ((("address_id", "1"), ("attribute[color]", "rojo")), "attribute[color]:"),
])
def test_each_bad_post_is_a_400_that_says_why(pairs, expected):
    with pytest.raises(Open311Error) as caught:
        open311.submission_from_form(form(*pairs), OTHER)
    assert caught.value.status == 400
    assert any(expected in text for text in caught.value.descriptions), caught.value.descriptions


def test_every_problem_of_a_post_is_listed_at_once():
    with pytest.raises(Open311Error) as caught:
        open311.submission_from_form(form(("lat", "20.5"), ("attribute[problema][]", "roto"),
                                          ("attribute[vecinos]", "muchas")), DRAIN)
    descriptions = " | ".join(caught.value.descriptions)
    assert "lat and long" in descriptions
    assert "attribute[problema]" in descriptions and "attribute[vecinos]" in descriptions


def test_a_missing_required_attribute_names_it():
    with pytest.raises(Open311Error) as caught:
        open311.submission_from_form(form(("address_id", "1")), DRAIN)
    assert caught.value.descriptions == ("attribute[problema]: required: ¿Qué pasa?",)


# ---- what a client asks for --------------------------------------------------------------------


def test_by_default_requests_are_the_last_90_days_newest_first_a_page_of_50():
    filters = open311.request_filters({}, NOW)
    assert filters["opened_to"] == NOW.isoformat()
    assert filters["opened_from"] == (NOW - timedelta(days=90)).isoformat()
    assert (filters["limit"], filters["offset"], filters["order"]) == (50, 0, "opened_at desc")


def test_filters_by_code_status_dates_and_page():
    filters = open311.request_filters({
        "service_code": "bache, drenaje", "status": "open", "start_date": "2026-01-01T00:00:00Z",
        "end_date": "2026-02-01T00:00:00 06:00", "page_size": "20", "page": "3"}, NOW)
    assert filters["service_code"] == "bache,drenaje" and filters["status"] == "open"
    assert filters["opened_from"] == "2026-01-01T00:00:00+00:00"
    assert filters["opened_to"] == "2026-02-01T00:00:00+06:00"  # an unencoded '+' repaired
    assert (filters["limit"], filters["offset"]) == (20, 40)


def test_open_and_closed_together_is_no_status_filter():
    assert "status" not in open311.request_filters({"status": "open,closed"}, NOW)


def test_service_request_ids_override_every_other_argument():
    filters = open311.request_filters({"service_request_id": "QRO-1, QRO-2,QRO-1",
                                       "status": "bogus", "start_date": "nope"}, NOW)
    assert filters == {"folio": "QRO-1,QRO-2", "limit": 2, "order": "opened_at desc"}


def test_a_window_starting_alone_runs_90_days_and_one_ending_alone_starts_90_days_before():
    assert open311.request_filters({"start_date": "2026-01-01T00:00:00Z"}, NOW)["opened_to"] \
        == "2026-04-01T00:00:00+00:00"
    assert open311.request_filters({"end_date": "2026-01-01T00:00:00Z"}, NOW)["opened_from"] \
        == "2025-10-03T00:00:00+00:00"


@pytest.mark.parametrize("args, expected", [
    ({"start_date": "2026-01-01"}, "start_date"),                      # no time, no zone
    ({"start_date": "2026-01-01T00:00:00"}, "start_date"),             # no zone
    ({"end_date": "yesterday"}, "end_date"),
    ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "after"),
    ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "90 days"),
    ({"status": "pending"}, "status"),
    ({"page_size": "1001"}, "page_size"),
    ({"page": "0"}, "page"),
])
def test_bad_queries_are_a_400(args, expected):
    with pytest.raises(Open311Error) as caught:
        open311.request_filters(args, NOW)
    assert caught.value.status == 400 and expected in caught.value.descriptions[0]


def test_updates_default_to_the_last_day_and_keep_the_end_date_for_intake():
    filters, end = open311.update_filters({}, NOW)
    assert filters == {"since": (NOW - timedelta(days=1)).isoformat(), "limit": 50}
    assert end is None
    filters, end = open311.update_filters({"start_date": "2026-02-01T00:00:00Z",
                                           "end_date": "2026-02-02T00:00:00Z",
                                           "service_code": "bache"}, NOW)
    assert filters["since"] == "2026-02-01T00:00:00+00:00" and filters["service_code"] == "bache"
    assert end == datetime(2026, 2, 2, tzinfo=UTC)


# ---- what we answer ----------------------------------------------------------------------------


def test_datetimes_are_local_with_their_offset_and_no_fraction():
    assert open311_docs.w3c("2026-02-28T16:30:00.123+00:00", MX) == "2026-02-28T10:30:00-06:00"
    naive_is_utc = open311_docs.w3c("2026-02-28T16:30:00", MX)
    assert naive_is_utc == "2026-02-28T10:30:00-06:00"
    assert open311_docs.w3c(None, MX) is None


def test_the_service_list_in_xml_and_json():
    entries = [open311_docs.service_entry(DRAIN), open311_docs.service_entry(OTHER)]
    assert entries[0] == {"service_code": "drenaje", "service_name": "Drenaje obstruido",
                          "description": "Coladera tapada", "metadata": True, "type": "realtime",
                          "keywords": "drenaje, coladera", "group": "Agua y drenaje"}
    assert entries[1]["metadata"] is False
    root = xml("services", entries)
    assert root.tag == "services" and [s.tag for s in root] == ["service", "service"]
    assert root.find("service/metadata").text == "true"
    assert root.find("service/keywords").text == "drenaje, coladera"
    assert json.loads(open311_docs.render("json", "services", entries)) == entries


def test_a_service_definition_with_attributes_and_values():
    document = open311_docs.definition_document(DRAIN)
    root = xml("service_definition", document)
    assert root.findtext("service_code") == "drenaje"
    first = root.find("attributes/attribute")
    assert [first.findtext(t) for t in ("variable", "code", "datatype", "required", "order")] \
        == ["true", "problema", "multivaluelist", "true", "1"]
    assert first.find("datatype_description").text is None
    assert [(v.findtext("key"), v.findtext("name")) for v in first.findall("values/value")] \
        == [("tapado", "Tapado"), ("olor", "Mal olor")]
    assert document["attributes"][1]["values"] == [] and document["attributes"][1]["order"] == 2


def test_a_request_in_xml_escapes_text_and_nests_extended_attributes():
    document = open311_docs.request_document(ROW, MX, "Se atiende en 24 horas.")
    root = xml("service_requests", [document])
    request = root.find("request")
    assert request.findtext("service_request_id") == "QRO-2026-000123"
    assert request.findtext("description") == ROW["description"]
    assert request.findtext("agency_responsible") == "agua_potable"
    assert request.findtext("requested_datetime") == "2026-02-27T10:00:00-06:00"
    assert request.findtext("updated_datetime") == "2026-02-28T10:30:00-06:00"
    assert request.findtext("expected_datetime") == "2026-02-28T10:00:00-06:00"
    assert request.findtext("lat") == "20.5931" and request.find("zipcode").text is None
    assert request.findtext("extended_attributes/external_status_code") == "closed"
    assert request.findtext("extended_attributes/resolution") == "fixed"
    body = open311_docs.render("json", "service_requests", [document]).decode()
    assert json.loads(body)[0]["extended_attributes"]["step_label"] == "Cerrado"
    strict = open311_docs.request_document(ROW, MX, None, extensions=False)
    assert "extended_attributes" not in strict


def test_the_post_answer_gives_the_folio_and_token_as_strings_never_the_access_token():
    receipt = {"folio": "QRO-2026-000123", "token": "ab12", "access_token": "secret"}
    document = open311_docs.receipt_document(receipt, "Drenaje: 24 horas.")
    assert document == [{"service_request_id": "QRO-2026-000123", "token": "ab12",
                         "service_notice": "Drenaje: 24 horas.", "account_id": None}]
    root = xml("service_requests", document)
    assert root.find("request/account_id") is not None and "secret" not in ET.tostring(
        root, encoding="unicode")


def test_a_token_and_updates_and_discovery_in_xml():
    root = xml("service_requests", open311_docs.token_document("ab12", "QRO-2026-000123"))
    assert root.findtext("request/token") == "ab12"
    updates = open311_docs.updates_document([
        {"update_id": "QRO-1-2", "service_request_id": "QRO-1", "status": "open",
         "updated_datetime": "2026-02-01T12:00:00+00:00", "description": "Asignado",
         "media_url": None},
        {"update_id": "QRO-1-3", "service_request_id": "QRO-1", "status": "closed",
         "updated_datetime": "2026-02-03T12:00:00+00:00", "description": "Cerrado",
         "media_url": None}], MX, end=datetime(2026, 2, 2, tzinfo=UTC))
    root = xml("service_request_updates", updates)
    assert [u.findtext("update_id") for u in root.findall("request_update")] == ["QRO-1-2"]
    assert root.findtext("request_update/updated_datetime") == "2026-02-01T06:00:00-06:00"
    settings = Settings("queretaro.gob.mx", {}, MX, "http://x/open311/v2", "070", "pida una")
    root = xml("discovery", open311_docs.discovery_document(settings, "2026-01-01T00:00:00Z"))
    endpoint = root.find("endpoints/endpoint")
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert [f.text for f in endpoint.findall("formats/format")] == ["text/xml",
                                                                     "application/json"]
    assert root.findtext("key_service") == "pida una"


def test_errors_are_a_list_of_code_and_description():
    error = Open311Error(400, "lat and long must be sent together", "email: Not valid")
    assert json.loads(open311_docs.render("json", "errors", error.document())) == [
        {"code": 400, "description": "lat and long must be sent together"},
        {"code": 400, "description": "email: Not valid"}]
    root = xml("errors", error.document())
    assert [(e.findtext("code"), e.findtext("description")) for e in root.findall("error")][0] \
        == ("400", "lat and long must be sent together")


def test_characters_xml_cannot_carry_are_dropped():
    root = xml("errors", [{"code": 400, "description": "a\x00b\x1fc"}])
    assert root.findtext("error/description") == "abc"


def test_unexpected_failures_are_the_specs_general_error_with_only_the_request_id():
    status, document = problem(RuntimeError("password=hunter2"), "req-7")
    assert status == 500 and document[0]["description"].startswith("General service error")
    assert "req-7" in document[0]["description"] and "hunter2" not in str(document)


def test_api_keys_and_jurisdiction():
    keys = parse_api_keys("demo:expediente-demo-key, fixmystreet:k2,")
    assert keys == {"expediente-demo-key": "demo", "k2": "fixmystreet"}
    settings = Settings("queretaro.gob.mx", keys, MX, "", "", "")
    assert settings.client("k2") == "fixmystreet"
    for key in (None, "", "wrong"):
        with pytest.raises(Open311Error) as caught:
            settings.client(key)
        assert caught.value.status == 403
    settings.check_jurisdiction(None)
    settings.check_jurisdiction("queretaro.gob.mx")
    with pytest.raises(Open311Error) as caught:
        settings.check_jurisdiction("sfgov.org")
    assert caught.value.status == 404


def test_tracking_down_or_slow_is_a_503_and_its_validation_errors_a_400():
    assert problem(ServiceDown("tracking"))[0] == 503
    assert problem(RpcTimeout("tracking.open311_requests did not answer in 10 s"))[0] == 503
    status, document = problem(WireError("invalid_input", fields={"limit": ["too big"]}))
    assert status == 400 and "limit: too big" in document[0]["description"]
    assert problem(WireError("report_closed", "the report is closed"))[0] == 409
    assert problem(RemoteError("KeyError", "'folio'"))[0] == 503  # a failure without a code
