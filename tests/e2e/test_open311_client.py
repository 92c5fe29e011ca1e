"""An Open311 client we did not write (PyPI's `georeport`) reads our server as it reads any
city's: services, a service definition, requests and one request, in JSON and in XML. It cannot
post, so the post is the spec's own form, sent as any client sends it."""

from __future__ import annotations

import pytest
import requests
from georeport import GeoReport

pytestmark = pytest.mark.e2e

JURISDICTION = "queretaro.gob.mx"


@pytest.fixture(scope="module")
def posted(stack):
    form = {"api_key": "expediente-demo-key", "jurisdiction_id": JURISDICTION,
            "service_code": "alumbrado_publico", "lat": "20.5931", "long": "-100.392",
            "description": "Luminaria apagada frente al parque", "attribute[falla]": "apagada",
            "email": "vecina@example.com", "first_name": "Rosa"}
    response = requests.post(f"{stack.intake.url}/open311/v2/requests.json", data=form,
                             timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()[0]


@pytest.mark.parametrize("output_format", ["json", "xml"])
def test_an_unmodified_open311_client_reads_services_definitions_and_requests(
        stack, posted, output_format):
    client = GeoReport(f"{stack.intake.url}/open311/v2", jurisdiction=JURISDICTION,
                       output_format=output_format)
    services = client.get_service_list()
    codes = [service["service_code"] for service in services]
    assert "bache" in codes and "alumbrado_publico" in codes
    definition = client.get_service_definition("alumbrado_publico")
    assert definition["service_code"] == "alumbrado_publico"
    folio = posted["service_request_id"]
    found = client.get_service_requests(service_request_id=folio)
    found = found if isinstance(found, list) else [found]  # xmltodict gives one as a dict
    assert [request["service_request_id"] for request in found] == [folio]
    one = client.get_service_request(folio)
    assert folio in str(one)
    listed = client.get_service_requests(service_code="alumbrado_publico", status="open")
    assert folio in str(listed)
    assert "vecina@example.com" not in str(listed) and "Rosa" not in str(listed)
