"""The citizen's status page follows its report live when tracking knows notifications
(NOTIFICATIONS_URL): the page names its folio, the stream version it shows and where the stream
is, loads its one script, and its CSP lets it connect there and nowhere else; without the setting
the page is as it always was. The "avísame" service worker is served from the root."""

from __future__ import annotations

import re
from html import unescape

import pytest
from nameko.dependency_providers import Config

from services.tracking.dependencies import TrackingRuntime
from services.tracking.read.pages import render_status
from services.tracking.service import TrackingService
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.chassis.http import page_policy
from tests.support import ROOT
from tests.workers import Host, http_answer, rpc_reply

AVISOS = "https://avisos.example.gob.mx"
POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras",
    "description": "Bache profundo frente a la escuela", "channel": "phone_070",
    "location": {"lat": 20.5931, "long": -100.392},
}
BOX = re.compile(r'<div id="reporte"([^>]*)>')


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking")
    config = load_config(ROOT / "services/tracking/config.yaml",
                         SQLITE_DBNAME=str(folder / "tracking.sqlite"), RELAY_ENABLED="false",
                         PROJECTION_COALESCE=0, LEADERSHIP_POLL_INTERVAL=0.1,
                         NOTIFICATIONS_URL=f"{AVISOS}/")
    host = Host(TrackingService, config).provide(tracking=TrackingRuntime(), auth=Auth(),
                                                 config=Config()).start()
    yield host
    host.stop()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def opened(host) -> dict:
    return rpc_reply(host, "open_report", POTHOLE, token=token(host, "operator"))


def attributes(page: str) -> dict[str, str]:
    """The data attributes of the page's live element (#reporte)."""
    found = BOX.search(page)
    assert found is not None, "the page has no #reporte"
    return {name: unescape(value)
            for name, value in re.findall(r'data-([a-z]+)="([^"]*)"', found.group(1))}


def test_a_status_page_names_its_folio_version_and_stream_and_loads_its_script(host):
    report = opened(host)
    folio = report["folio"]
    supervisor = token(host, "supervisor", department="obras")
    rpc_reply(host, "run_command", "assign", folio, {"crew_id": "C-07"}, token=supervisor)

    page = http_answer(host, "GET", f"/seguimiento/{folio}").get_data(as_text=True)
    assert attributes(page) == {"folio": folio, "version": "2", "notifications": AVISOS}
    assert '<script src="/static/live.js" defer></script>' in page
    assert 'id="en-vivo"' in page and 'id="avisame"' in page

    private = http_answer(host, "GET", f"/seguimiento/{folio}",
                          query_string={"token": report["access_token"]}).get_data(as_text=True)
    assert attributes(private)["version"] == "2" and "Vista privada" in private


def test_without_notifications_the_page_is_as_before(host, monkeypatch):
    folio = opened(host)["folio"]
    monkeypatch.setitem(host.config, "NOTIFICATIONS_URL", "")
    page = http_answer(host, "GET", f"/seguimiento/{folio}").get_data(as_text=True)
    assert attributes(page) == {}
    assert "<script" not in page and "en-vivo" not in page and "avisame" not in page
    assert "Reporte recibido" in page


def test_pages_without_a_report_load_no_script(host):
    missing = http_answer(host, "GET", "/seguimiento/QRO-2026-999999").get_data(as_text=True)
    folio = opened(host)["folio"]
    refused = http_answer(host, "GET", f"/seguimiento/{folio}",
                          query_string={"token": "nope"}).get_data(as_text=True)
    for page in (missing, refused):
        assert "<script" not in page and "data-notifications" not in page


def test_a_closed_report_is_followed_live_but_offers_no_avisame(host):
    folio = opened(host)["folio"]
    rpc_reply(host, "run_command", "close_report", folio,
              {"resolution": "cancelled", "notes": "Lo reportaron por error"},
              token=token(host, "supervisor", department="obras"))
    page = http_answer(host, "GET", f"/seguimiento/{folio}").get_data(as_text=True)
    assert attributes(page)["folio"] == folio and "live.js" in page
    assert "avisame" not in page


def test_hostile_values_in_the_data_attributes_are_escaped():
    folio = 'QRO-2026-1"><script>alert(1)</script>'
    view = {"folio": folio, "status": "open", "step_label": "Reporte recibido",
            "service": {"name": "Bache"}, "opened_at": None, "timeline": []}
    page = render_status(folio, view, live_url='https://a.example/"><img src=x onerror=alert(1)>',
                         version=3)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert attributes(page) == {"folio": folio, "version": "3",
                                "notifications": 'https://a.example/"><img src=x '
                                                 'onerror=alert(1)>'}


def test_the_page_may_connect_to_notifications_and_register_its_service_worker(host):
    policy = page_policy(host.config)
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives["connect-src"] == f"'self' {AVISOS}"
    assert directives["worker-src"] == "'self'"
    assert directives["script-src"] == "'self'" and "unsafe-inline" not in policy


def test_a_service_without_notifications_keeps_its_policy():
    before = ("default-src 'none'; script-src 'self'; style-src 'self'; "
              "img-src 'self' https: http://127.0.0.1:8000; "
              "form-action 'self' https://seguimiento.example.gob.mx; "
              "base-uri 'none'; frame-ancestors 'none'")
    assert page_policy({"TRUSTED_MEDIA_URLS": "http://127.0.0.1:8000/media/",
                        "STATUS_PAGE_URL": "https://seguimiento.example.gob.mx/seguimiento",
                        "NOTIFICATIONS_URL": ""}) == before
    assert page_policy({"TRUSTED_MEDIA_URLS": "http://127.0.0.1:8000/media/",
                        "STATUS_PAGE_URL": "https://seguimiento.example.gob.mx/"
                                           "seguimiento"}) == before


def test_the_service_worker_and_the_script_are_served_as_javascript(host):
    worker = http_answer(host, "GET", "/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert "showNotification" in worker.get_data(as_text=True)
    assert worker.headers["Cache-Control"] == "no-cache"
    script = http_answer(host, "GET", "/static/live.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "EventSource" in script.get_data(as_text=True)
