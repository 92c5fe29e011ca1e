"""Open311 GeoReport v2 as other systems and citizen apps use it: form posts and XML/JSON reads
against running intake and tracking, with the spec's errors and no personal data in any answer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from tests.support import bearer

pytestmark = pytest.mark.e2e

KEY = "expediente-demo-key"  # config.yaml's default demo client
JURISDICTION = "queretaro.gob.mx"
ANA = {"email": "ana.lopez@example.com", "phone": "+52 442 555 0199", "first_name": "Anacleta",
       "last_name": "Zubiría"}
POTHOLE = [("api_key", KEY), ("service_code", "bache"), ("lat", "20.5931"), ("long", "-100.392"),
           ("description", "Bache profundo frente a la escuela"), ("attribute[tamano]", "grande")]


def url(stack, path: str) -> str:
    return f"{stack.intake.url}/open311/v2/{path}"


def get(stack, path: str, **params) -> requests.Response:
    return requests.get(url(stack, path), params=params, timeout=30)


def post(stack, pairs, fmt="json") -> requests.Response:
    return requests.post(url(stack, f"requests.{fmt}"), data=pairs, timeout=30)


def parsed(response: requests.Response) -> ET.Element:
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def listed(response: requests.Response) -> list:
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return response.json()


def every_request(stack) -> list[dict]:
    response = get(stack, "requests.json", page_size="1000")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def reported(stack) -> dict:
    """A citizen's app posts a pothole with her contact details, exactly as the spec's example
    posts (a raw form body, attribute[CODE]=value)."""
    body = (f"api_key={KEY}&jurisdiction_id={JURISDICTION}&service_code=bache"
            "&lat=20.59310000&long=-100.39200000&address_string=Av.+Zaragoza+10%2C+Centro"
            f"&email={quote(ANA['email'])}&device_id=tt222111&account_id=123456"
            f"&first_name={quote(ANA['first_name'])}&last_name={quote(ANA['last_name'])}"
            f"&phone={quote(ANA['phone'])}&description=Un+bache+grande+se+come+la+calle"
            "&media_url=https%3A%2F%2Ffotos.example%2F2212426634.jpg"
            "&attribute[tamano]=grande&attribute[carril]=cruce")
    response = requests.post(url(stack, "requests.json"), data=body.encode(), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded; "
                                                      "charset=utf-8"})
    assert response.status_code == 200, response.text
    [receipt] = listed(response)
    return receipt


# ---- discovery, services, definitions ----------------------------------------------------------


def test_discovery_in_both_formats(stack):
    document = listed(get(stack, "discovery.json"))
    [endpoint] = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == url(stack, "").rstrip("/")
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert document["changeset"] and document["contact"] and document["key_service"]
    root = parsed(get(stack, "discovery.xml"))
    assert root.tag == "discovery"
    assert root.findtext("endpoints/endpoint/type") == "production"


def test_the_service_list_in_both_formats(stack):
    services = {s["service_code"]: s for s in listed(get(stack, "services.json"))}
    assert services["bache"]["metadata"] is True and services["bache"]["type"] == "realtime"
    assert services["otro"]["metadata"] is False
    assert "pavimento" in services["bache"]["keywords"].split(", ")
    root = parsed(get(stack, "services.xml"))
    codes = [s.findtext("service_code") for s in root.findall("service")]
    assert sorted(codes) == sorted(services)
    assert root.find("service/group").text


def test_a_service_definition_in_both_formats(stack):
    definition = listed(get(stack, "services/drenaje_obstruido.json"))
    [problema] = definition["attributes"]
    assert problema["datatype"] == "multivaluelist" and problema["required"] is True
    assert {"key": "tapado", "name": "Está tapado"} in problema["values"]
    root = parsed(get(stack, "services/bache.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "bache"
    assert [a.findtext("code") for a in root.findall("attributes/attribute")] == ["tamano",
                                                                                  "carril"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_unknown_service_definition_is_a_404(stack, fmt):
    response = get(stack, f"services/no_existe.{fmt}")
    assert response.status_code == 404
    if fmt == "json":
        [error] = listed(response)
        assert error["code"] == 404 and "no_existe" in error["description"]
    else:
        assert parsed(response).findtext("error/code") == "404"


@pytest.mark.parametrize("method, path", [("GET", "services.csv"), ("GET", "discovery.html"),
                                          ("GET", "requests/QRO-2026-000001.yaml"),
                                          ("POST", "requests.txt")])
def test_an_unknown_format_is_a_404(stack, method, path):
    response = requests.request(method, url(stack, path), data=POTHOLE, timeout=30)
    assert response.status_code == 404
    assert parsed(response).findtext("error/code") == "404"


def test_another_jurisdiction_is_not_found(stack):
    response = get(stack, "services.json", jurisdiction_id="sfgov.org")
    assert response.status_code == 404 and "sfgov.org" in response.json()[0]["description"]
    assert get(stack, "services.json", jurisdiction_id=JURISDICTION).status_code == 200


# ---- posting -----------------------------------------------------------------------------------


def test_a_post_answers_the_folio_and_a_token_as_strings(stack, reported):
    assert reported["service_request_id"].startswith("QRO-")
    assert isinstance(reported["token"], str) and reported["token"]
    assert reported["account_id"] is None and "72" in reported["service_notice"]
    assert set(reported) == {"service_request_id", "token", "service_notice", "account_id"}


def test_a_post_in_xml_and_a_multivaluelist(stack):
    response = post(stack, [("api_key", KEY), ("service_code", "drenaje_obstruido"),
                            ("address_string", "Calle 5 de Mayo 20"),
                            ("attribute[problema][]", "tapado"),
                            ("attribute[problema][]", "olor")], fmt="xml")
    assert response.status_code == 200, response.text
    request = parsed(response).find("request")
    folio = request.findtext("service_request_id")
    assert folio.startswith("QRO-") and request.find("account_id") is not None
    [found] = listed(get(stack, f"requests/{folio}.json"))
    assert found["service_code"] == "drenaje_obstruido"
    assert found["address"] == "Calle 5 de Mayo 20" and found["lat"] is None


BAD_POSTS = [
    ("no api_key", [p for p in POTHOLE if p[0] != "api_key"], 403, "api_key"),
    ("wrong api_key", [("api_key", "guess"), *POTHOLE[1:]], 403, "api_key"),
    ("other jurisdiction", [*POTHOLE, ("jurisdiction_id", "sfgov.org")], 404, "jurisdiction"),
    ("no service_code", [p for p in POTHOLE if p[0] != "service_code"], 400, "service_code"),
    ("unknown service_code", [*POTHOLE[:1], ("service_code", "ovni"), *POTHOLE[2:]], 404,
     "ovni"),
    ("no location", [p for p in POTHOLE if p[0] not in ("lat", "long")], 400, "location"),
    ("lat without long", [p for p in POTHOLE if p[0] != "long"], 400, "lat and long"),
    ("bad attribute value", [*POTHOLE[:-1], ("attribute[tamano]", "enorme")], 400,
     "attribute[tamano]"),
    ("missing required attribute", POTHOLE[:-1], 400, "attribute[tamano]"),
    ("unknown attribute", [*POTHOLE, ("attribute[color]", "rojo")], 400, "attribute[color]"),
    ("description too long", [*[p for p in POTHOLE if p[0] != "description"],
                              ("description", "x" * 4001)], 400, "description"),
    ("bad email", [*POTHOLE, ("email", "ana-at-example")], 400, "email"),
    ("bad phone", [*POTHOLE, ("phone", "llámame")], 400, "phone"),
    ("bad media_url", [*POTHOLE, ("media_url", "file:///etc/passwd")], 400, "media_url"),
]


@pytest.mark.parametrize("why, pairs, status, named", BAD_POSTS, ids=[b[0] for b in BAD_POSTS])
def test_a_bad_post_gets_the_specs_error_and_writes_nothing(stack, why, pairs, status, named):
    before = len(every_request(stack))
    for fmt in ("json", "xml"):
        response = post(stack, pairs, fmt)
        assert response.status_code == status, response.text
        if fmt == "json":
            errors = listed(response)
            assert all(e["code"] == status for e in errors)
            assert any(named in e["description"] for e in errors), errors
        else:
            assert parsed(response).findtext("error/code") == str(status)
    assert len(every_request(stack)) == before


# ---- reading requests back ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_request_by_id(stack, reported, fmt):
    folio = reported["service_request_id"]
    response = get(stack, f"requests/{folio}.{fmt}")
    assert response.status_code == 200, response.text
    if fmt == "json":
        [request] = listed(response)
        assert request["service_request_id"] == folio and request["status"] == "open"
        assert request["service_code"] == "bache" and request["agency_responsible"]
        assert request["address"] == "Av. Zaragoza 10, Centro"
        assert request["lat"] == pytest.approx(20.5931) and request["long"] == -100.392
        assert request["media_url"] == "https://fotos.example/2212426634.jpg"
        assert request["description"] == "Un bache grande se come la calle"
        for field in ("requested_datetime", "updated_datetime", "expected_datetime"):
            assert datetime.fromisoformat(request[field]).tzinfo is not None
        assert request["extended_attributes"]["external_status_code"]
    else:
        [request] = parsed(response).findall("request")
        assert request.findtext("service_request_id") == folio
        assert request.findtext("extended_attributes/external_status_code")
        assert datetime.fromisoformat(request.findtext("requested_datetime")).tzinfo


@pytest.mark.parametrize("path", ["requests/QRO-1999-999999.json", "requests/QRO-1999-999999.xml",
                                  "requests/a,b.json", "tokens/no-such-token.json",
                                  "tokens/no-such-token.xml"])
def test_unknown_requests_and_tokens_are_a_404(stack, path):
    response = get(stack, path)
    assert response.status_code == 404
    code = (response.json()[0]["code"] if path.endswith(".json")
            else int(parsed(response).findtext("error/code")))
    assert code == 404


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_token_finds_its_request(stack, reported, fmt):
    response = get(stack, f"tokens/{reported['token']}.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        assert listed(response) == [{"service_request_id": reported["service_request_id"],
                                     "token": reported["token"]}]
    else:
        assert parsed(response).findtext("request/service_request_id") == \
            reported["service_request_id"]


def test_the_round_trip_through_the_list_filters(stack, reported):
    folio = reported["service_request_id"]
    other = post(stack, [("api_key", KEY), ("service_code", "alumbrado_publico"),
                         ("lat", "20.6"), ("long", "-100.4"), ("attribute[falla]", "apagada")])
    lamp = other.json()[0]["service_request_id"]
    closed = requests.post(f"{stack.tracking.url}/reports/{lamp}/close_report",
                           json={"resolution": "fixed", "notes": "Se cambió el foco"},
                           headers={"Authorization": bearer("supervisor")["authorization"]},
                           timeout=30)
    assert closed.status_code == 200, closed.text

    def folios(**params) -> list[str]:
        response = get(stack, "requests.json", **params)
        assert response.status_code == 200, response.text
        return [r["service_request_id"] for r in response.json()]

    assert folio in folios() and lamp in folios()
    assert folio in folios(service_code="bache") and lamp not in folios(service_code="bache")
    assert lamp in folios(service_code="bache,alumbrado_publico")
    assert folio in folios(status="open") and lamp not in folios(status="open")
    assert lamp in folios(status="closed") and folio not in folios(status="closed")
    assert {folio, lamp} <= set(folios(status="open,closed"))
    now = datetime.now(UTC)
    assert folio in folios(start_date=(now - timedelta(hours=1)).isoformat(),
                           end_date=(now + timedelta(hours=1)).isoformat())
    assert folio not in folios(start_date=(now - timedelta(days=30)).isoformat(),
                               end_date=(now - timedelta(days=29)).isoformat())
    assert folios(service_request_id=f"{folio},{lamp}", status="closed",
                  service_code="semaforo") == [lamp, folio]
    assert len(folios(page_size="1")) == 1 and folios(page_size="1", page="2") != folios(
        page_size="1")
    [lamp_view] = get(stack, f"requests/{lamp}.json").json()
    assert lamp_view["status"] == "closed" and lamp_view["status_notes"]
    assert lamp_view["extended_attributes"]["resolution"] == "fixed"
    xml_list = parsed(get(stack, "requests.xml", service_request_id=folio))
    assert [r.findtext("service_request_id") for r in xml_list.findall("request")] == [folio]

    updates = get(stack, "servicerequestupdates.json",
                  start_date=(now - timedelta(hours=1)).isoformat())
    assert updates.status_code == 200, updates.text
    closing = [u for u in updates.json() if u["service_request_id"] == lamp]
    assert closing and closing[-1]["status"] == "closed"
    assert datetime.fromisoformat(closing[-1]["updated_datetime"]).tzinfo is not None
    root = parsed(get(stack, "servicerequestupdates.xml",
                      start_date=(now - timedelta(hours=1)).isoformat()))
    assert lamp in [u.findtext("service_request_id") for u in root.findall("request_update")]


@pytest.mark.parametrize("params, named", [
    ({"start_date": "2026-01-01"}, "start_date"),
    ({"end_date": "mañana"}, "end_date"),
    ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-06-01T00:00:00Z"}, "90 days"),
    ({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}, "after"),
    ({"status": "pendiente"}, "status"),
    ({"page_size": "5000"}, "page_size"),
])
def test_bad_dates_and_filters_are_a_400(stack, params, named):
    for fmt in ("json", "xml"):
        response = get(stack, f"requests.{fmt}", **params)
        assert response.status_code == 400, response.text
        if fmt == "json":
            assert named in response.json()[0]["description"]
        else:
            assert named in parsed(response).findtext("error/description")
    assert get(stack, "servicerequestupdates.json", start_date="ayer").status_code == 400


def test_no_contact_detail_appears_in_any_answer(stack, reported):
    folio, token = reported["service_request_id"], reported["token"]
    answers = [json.dumps(reported)] + [get(stack, path).text for path in (
        f"requests/{folio}.json", f"requests/{folio}.xml", "requests.json", "requests.xml",
        f"tokens/{token}.json", "servicerequestupdates.json", "servicerequestupdates.xml")]
    for text in answers:
        for detail in (*ANA.values(), "555 0199", "tt222111", "123456"):
            assert detail not in text
    staff = requests.get(f"{stack.tracking.url}/reports/{folio}", timeout=30,
                         headers={"Authorization": bearer("supervisor")["authorization"]})
    assert staff.json()["channel"] == "open311"
    assert ANA["email"] not in staff.text and ANA["phone"] not in staff.text


def test_while_tracking_is_down_reads_get_a_503_in_the_specs_format(stack, reported):
    """Last in this module: it stops tracking and starts it again."""
    stack.tracking.stop()
    try:
        for fmt in ("json", "xml"):
            response = get(stack, f"requests/{reported['service_request_id']}.{fmt}")
            assert response.status_code == 503, response.text
            code = (response.json()[0]["code"] if fmt == "json"
                    else int(parsed(response).findtext("error/code")))
            assert code == 503
        assert get(stack, "services.json").status_code == 200  # the catalog is intake's own
    finally:
        stack.tracking.start()
    assert get(stack, f"requests/{reported['service_request_id']}.json").status_code == 200
