"""The crews' field app as crews serves it, on its real entrypoints without a broker: every file of
the app with its own content type and nothing outside it, a service worker that keeps every file
the app loads, the settings the app starts from, and the demo sign-in: a member's token in
development mode, a clear 400 for what it cannot sign in as, and a 404 that mints nothing
anywhere else. docs/access.md's "Crews: field app" cells run here too."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from nameko.dependency_providers import Config
from PIL import Image
from werkzeug.exceptions import NotFound

from services.crews.dependencies import CrewsRuntime
from services.crews.service import CrewsService
from services.crews.webdoors import TYPES, WEBAPP
from shared.chassis.auth import Auth, TokenVerifier
from shared.chassis.config import load_config
from shared.contracts.lifecycle import OPEN_STEPS
from tests import accessdoc
from tests.support import ROOT
from tests.unit.test_crews_access import PRINCIPALS, token
from tests.workers import Host, http_answer

CITY = ZoneInfo("America/Mexico_City")
OBRAS = "obras_publicas"
SECTION = "Crews: field app"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    config = load_config(ROOT / "services/crews/config.yaml", PROJECTION_COALESCE=0,
                         SQLITE_DBNAME=str(tmp_path_factory.mktemp("crews") / "crews.sqlite"))
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), auth=Auth(),
                                              config=Config()).start()
    app = host.providers["crews"].app
    app.create_crew("C-01", "Bacheo Centro", OBRAS, by="setup")
    app.join("C-01", "pedro", "Pedro Ramírez", by="setup")
    app.create_crew("C-02", "Alumbrado <Norte>", "servicios_publicos", by="setup")
    app.join("C-02", "rosa", "Rosa Díaz", by="setup")
    app.start_shift("C-01", datetime.now(CITY), by="setup")
    yield host
    host.stop()


def stored(host: Host) -> int:
    return host.providers["crews"].app.recorder.max_notification_id() or 0


def get(host: Host, path: str, **request):
    """The answer as the chassis' server gives it: a path no door's route matches is its 404."""
    try:
        return http_answer(host, "GET", path, **request)
    except NotFound:
        return None


# ---- the app's files ---------------------------------------------------------------------------

def app_files() -> list[str]:
    return sorted(path.name for path in WEBAPP.iterdir() if path.is_file())


@pytest.mark.parametrize("name", app_files())
def test_every_file_of_the_app_is_served_with_its_own_type(host, name):
    answer = get(host, "/app/" if name == "index.html" else f"/app/{name}")
    assert answer.status_code == 200
    assert answer.mimetype == TYPES[name.rsplit(".", 1)[1]]
    assert answer.get_data() == (WEBAPP / name).read_bytes()
    assert answer.headers["Cache-Control"] == "no-cache"  # the service worker keeps the copy


@pytest.mark.parametrize("name", [
    "../webdoors.py", "..%2Fwebdoors.py", "%2e%2e%2Fservice.py", "..", ".hidden.js",
    "webdoors.py", "config.yaml", "App.js", "app.js.map", "nada.js", "app.js%00.png",
    "materials_seed.json"])
def test_nothing_outside_the_app_is_served(host, name):
    answer = get(host, f"/app/{name}")
    assert answer is None or answer.status_code == 404, name


def test_the_page_may_reach_only_its_own_service_unless_configured(host, monkeypatch):
    policy = get(host, "/app/").headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "manifest-src 'self'" in policy and "worker-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    monkeypatch.setitem(host.config, "OIDC_ISSUER", "https://id.example.mx/realms/municipio")
    monkeypatch.setitem(host.config, "FIELD_APP_TILES_URL",
                        "https://tiles.example.mx/{z}/{x}/{y}.png")
    policy = get(host, "/app/").headers["Content-Security-Policy"]
    assert "connect-src 'self' https://id.example.mx;" in policy
    assert "https://tiles.example.mx" in policy.split("img-src", 1)[1].split(";")[0]


def test_the_service_worker_keeps_every_file_the_app_loads(host):
    answer = get(host, "/app/sw.js")
    assert answer.headers["Service-Worker-Allowed"] == "/app/"
    worker = answer.get_data(as_text=True)
    shell = set(json.loads("[" + re.search(r"SHELL = \[(.*?)\];", worker, re.S)[1] + "]"))
    assert shell == {"./", "config.json", *(set(app_files()) - {"index.html", "sw.js"})}
    page = (WEBAPP / "index.html").read_text()
    loaded = set(re.findall(r'(?:src|href)="([^"#]+)"', page)) - {"demo"}
    for script in WEBAPP.glob("*.js"):
        loaded |= {name.removeprefix("./") for name in
                   re.findall(r'from "(\./[^"]+)"', script.read_text())}
    assert loaded <= shell, loaded - shell
    assert "/field/" not in worker and "/materials" not in worker  # never the API's answers


def test_the_app_can_be_installed(host):
    manifest = json.loads(get(host, "/app/manifest.webmanifest").get_data())
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    assert manifest["name"] and manifest["short_name"] and manifest["lang"].startswith("es")
    for icon in manifest["icons"]:
        answer = get(host, f"/app/{icon['src']}")
        assert answer.status_code == 200 and answer.mimetype == icon["type"]
        if icon["type"] == "image/png":
            width, height = map(int, icon["sizes"].split("x"))
            assert Image.open(io.BytesIO(answer.get_data())).size == (width, height)
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}


# ---- what the app starts from ------------------------------------------------------------------

def test_the_app_is_told_how_to_sign_in_and_how_a_job_moves_on(host, monkeypatch):
    settings = get(host, "/app/config.json").get_json()
    assert settings["oidc"] is None and settings["tiles"] is None
    assert settings["development"] is True and settings["demo_url"] == "demo"
    assert settings["steps"]["arrived"] == {"allowed_in": ["dispatched", "en_route"],
                                            "moves_to": "on_site",
                                            "moves_from": settings["steps"]["arrived"][
                                                "moves_from"]}
    assert settings["steps"]["materials"]["moves_to"] is None
    assert settings["steps"]["photo"]["allowed_in"] == list(OPEN_STEPS)
    assert settings["step_labels"]["on_site"] == "Cuadrilla en el sitio"
    monkeypatch.setitem(host.config, "OIDC_ISSUER", "https://id.example.mx/realms/municipio/")
    monkeypatch.setitem(host.config, "OIDC_CLIENT_ID", "cuadrillas")
    monkeypatch.setenv("EXPEDIENTE_ENV", "production")
    settings = get(host, "/app/config.json").get_json()
    assert settings["oidc"] == {"issuer": "https://id.example.mx/realms/municipio",
                                "client_id": "cuadrillas", "scope": "openid profile"}
    assert settings["development"] is False and settings["demo_url"] is None


# ---- the demo sign-in --------------------------------------------------------------------------

def sign_in(host: Host, **form: str):
    return http_answer(host, "POST", "/app/demo", data=form)


def test_the_demo_page_lists_every_crew_and_its_members(host):
    page = get(host, "/app/demo")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert 'id="cuadrilla-C-01"' in text and 'value="pedro"' in text and "Pedro Ramírez" in text
    assert "Alumbrado &lt;Norte&gt;" in text and "<Norte>" not in text


def test_a_demo_sign_in_gives_the_member_a_crew_token_that_the_doors_honour(host):
    answer = sign_in(host, crew="C-01", member="pedro")
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith("./#access_token=")  # in the fragment: never sent to a server
    given = unquote(location.partition("=")[2])
    member = TokenVerifier(host.config).verify(given)
    assert (member.subject, member.roles, member.crew_id, member.department) == (
        "pedro", ("crew",), "C-01", OBRAS)
    assert http_answer(host, "GET", "/crews/C-01", token=given).status_code == 200
    assert http_answer(host, "GET", "/crews/C-02", token=given).status_code == 403


# Demo sign-ins refused with a 400 that mints nothing (also run on PostgreSQL:
# tests/integration/test_crews_bad_input.py).
HOSTILE_DEMO = [
    ({"member": "pedro"}, "crew"),
    ({"crew": "C-01"}, "member"),
    ({"crew": "c 01", "member": "pedro"}, "crew"),
    ({"crew": "C-99", "member": "pedro"}, "crew"),
    ({"crew": "C-01", "member": "rosa"}, "member"),
    ({"crew": "C-01", "member": "   "}, "member"),
    ({"crew": "C-01", "member": "pedro", "roles": "admin"}, "roles"),
    ({"crew": "C-01\x00", "member": "pedro"}, "crew"),
    ({"crew": "C-01", "member": "pedro\x00"}, "member"),
]


@pytest.mark.parametrize(("form", "field"), HOSTILE_DEMO)
def test_a_demo_sign_in_it_cannot_honour_is_a_clear_400_and_mints_nothing(host, form, field):
    answer = sign_in(host, **form)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.mimetype == "text/html" and "Location" not in answer.headers
    assert f"{field}" in answer.get_data(as_text=True)  # says which field


def test_outside_development_the_demo_sign_in_does_not_exist(host, monkeypatch):
    monkeypatch.setenv("EXPEDIENTE_ENV", "production")
    assert get(host, "/app/demo").status_code == 404
    refused = sign_in(host, crew="C-01", member="pedro")
    assert refused.status_code == 404 and "Location" not in refused.headers
    assert "access_token" not in refused.get_data(as_text=True)
    assert get(host, "/app/").status_code == 200  # the app itself is served everywhere


# ---- docs/access.md, "Crews: field app" --------------------------------------------------------

KNOCKS = {
    "GET /app/": lambda host, bearer: get(host, "/app/", token=bearer),
    "GET /app/{name}": lambda host, bearer: get(host, "/app/app.js", token=bearer),
    "GET /app/sw.js": lambda host, bearer: get(host, "/app/sw.js", token=bearer),
    "GET /app/config.json": lambda host, bearer: get(host, "/app/config.json", token=bearer),
    "GET /app/demo": lambda host, bearer: get(host, "/app/demo", token=bearer),
    "POST /app/demo": lambda host, bearer: http_answer(
        host, "POST", "/app/demo", token=bearer, data={"crew": "C-01", "member": "pedro"}),
}


def cases() -> list:
    found = [pytest.param(door, column, cell, id=f"{door} [{column}]")
             for row in accessdoc.rows() if row.section == SECTION
             for door in row.doors for column, cell in row.cells.items()]
    assert {case.values[0] for case in found} == set(KNOCKS)  # every door has its row, once
    return found


@pytest.mark.parametrize(("door", "column", "cell"), cases())
def test_who_may_use_each_door_of_the_field_app(host, door, column, cell):
    assert column in PRINCIPALS
    before = stored(host)
    status = KNOCKS[door](host, token(host, column)).status_code
    if cell.allowed:
        assert status in (200, 303), status
    else:
        assert status == int(cell.access)
    assert stored(host) == before  # the app's doors write nothing
