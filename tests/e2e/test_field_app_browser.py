"""A crew member works a pothole with the field app in a real (headless) Chromium, against the
real tracking, intake and crews: signs in through the demo page, finds the job the supervisor
assigned and sets out. Then the phone's network is cut: en route (with an ETA and its position),
arrived, a photo and the materials all wait in the phone's outbox, counted on screen, while the
job's step moves on there and nothing reaches the city; with crews itself gone the app still
reopens with all of it, and a failed try keeps it. The network comes back, the outbox drains in
order, the work is completed, and the citizen's status page shows every step and the photo. A
step for a job taken away while the phone was offline is refused: shown to the member, and out
of the queue. And a member signs in with the city's identity provider (OpenID Connect, PKCE).

Uses Debian's chromium and chromedriver through tests/e2e/test_portal_browser.py's fixture."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode

import eventlet
import eventlet.wsgi
import pytest
import requests
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.auth import mint_token
from tests.e2e import test_portal_browser
from tests.e2e.test_field_steps import CITY, POTHOLE, auth
from tests.e2e.test_portal import tiny_png
from tests.stack import Stack
from tests.support import wait_for

pytestmark = pytest.mark.e2e

browser = test_portal_browser.browser  # headless Chromium, a phone's screen, a fixed position
WHERE = test_portal_browser.WHERE
CREW = auth("crew", crew_id="C-01")
OFFLINE = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
ONLINE = {**OFFLINE, "offline": False}


class IdentityProvider:
    """A stand-in for the city's OpenID Connect provider (another system): discovery, a sign-in
    that lets Ana in at once, and a token endpoint that honours a code only with its PKCE
    verifier. Its tokens are signed with the local development key the services verify."""

    CLIENT = "cuadrillas"

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (challenge, redirect_uri)
        self.tokens_given = 0
        listener = eventlet.listen(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self.server = eventlet.spawn(eventlet.wsgi.server, listener, self.answer,
                                     log_output=False)

    @Request.application
    def answer(self, request: Request) -> Response:
        answer = self.route(request)
        answer.headers["Access-Control-Allow-Origin"] = "*"  # as Keycloak's "web origins"
        return answer

    def route(self, request: Request) -> Response:
        if request.path == "/.well-known/openid-configuration":
            return json_response({"issuer": self.url, "token_endpoint": f"{self.url}/token",
                                  "authorization_endpoint": f"{self.url}/authorize"})
        asked = request.args if request.path == "/authorize" else request.form
        if request.path == "/authorize" and asked.get("response_type") == "code" and asked.get(
                "client_id") == self.CLIENT and asked.get("code_challenge_method") == "S256":
            code = uuid.uuid4().hex
            self.codes[code] = (asked["code_challenge"], asked["redirect_uri"])
            query = urlencode({"code": code, "state": asked["state"]})
            return Response(status=302, headers={"Location": f"{asked['redirect_uri']}?{query}"})
        if request.path == "/token" and request.method == "POST":
            challenge, redirect_uri = self.codes.pop(asked.get("code", ""), ("", ""))
            verifier = hashlib.sha256(asked.get("code_verifier", "").encode()).digest()
            if challenge and challenge == base64.urlsafe_b64encode(verifier).decode().rstrip(
                    "=") and asked.get("redirect_uri") == redirect_uri:
                self.tokens_given += 1
                return json_response({"token_type": "Bearer", "expires_in": 3600,
                                      "access_token": mint_token(
                                          "ana", ("crew",), crew_id="C-01",
                                          department="obras_publicas")})
            return json_response({"error": "invalid_grant"}, 400)
        return json_response({"error": "invalid_request"}, 400)

    def stop(self) -> None:
        self.server.kill()


@pytest.fixture(scope="module")
def identity_provider():
    provider = IdentityProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, identity_provider):
    """The running system, crews' field app told of the city's identity provider."""
    running = Stack(tmp_path_factory.mktemp("stack"), {
        "OIDC_ISSUER": identity_provider.url, "OIDC_CLIENT_ID": IdentityProvider.CLIENT}).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pedros_crew(stack):
    """Crew C-01 of public works with Pedro on shift, and the asphalt in the catalog."""
    admin = auth("admin")
    crews = stack.crews.url
    made = requests.post(f"{crews}/crews", headers=admin, timeout=10, json={
        "code": "C-01", "name": "Bacheo Centro", "department": "obras_publicas"})
    assert made.status_code == 201, made.text
    for door, body in (("members", {"member_id": "pedro", "name": "Pedro Ramírez"}),
                       ("shift", {"action": "start"})):
        answer = requests.post(f"{crews}/crews/C-01/{door}", headers=admin, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
    asphalt = requests.post(f"{crews}/materials", headers=admin, timeout=10, json={
        "code": "MEZ-ASF", "description": "Mezcla asfáltica en frío", "unit": "m3",
        "unit_cost": "1850.00",
        "effective_at": (datetime.now(CITY) - timedelta(days=1)).isoformat()})
    assert asphalt.status_code == 201, asphalt.text
    return "C-01"


def assigned_job(stack) -> str:
    """A pothole report assigned to C-01, once C-01's work list shows it."""
    opened = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE, timeout=10,
                           headers=auth("operator"))
    assert opened.status_code == 201, opened.text
    folio = opened.json()["folio"]
    assign = requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                           json={"crew_id": "C-01"}, headers=auth("supervisor"))
    assert assign.status_code == 200, assign.text
    wait_for(lambda: folio in [job["folio"] for job in requests.get(
        f"{stack.crews.url}/field/jobs", headers=CREW, timeout=10).json()["jobs"]],
        message=f"{folio} in C-01's jobs")
    return folio


def timeline(stack, folio: str) -> list[str]:
    return [entry["type"] for entry in requests.get(
        f"{stack.tracking.url}/reports/{folio}", timeout=10).json()["timeline"]]


class Screen:
    """What the member sees and presses, by the app's element ids."""

    def __init__(self, driver) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.by = driver, By
        # A page that navigates (a sign-in, a reload) leaves found elements stale: look again.
        self.wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))

    def find(self, element_id: str):
        return self.driver.find_element(self.by.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.find(element_id).text

    def until_text(self, element_id: str, expected: str) -> None:
        self.wait.until(lambda _: self.text(element_id) == expected,
                        f"#{element_id} to read {expected!r}")

    def press(self, element_id: str) -> None:
        self.wait.until(lambda _: self.find(element_id).is_displayed(), f"#{element_id} shown")
        self.find(element_id).click()

    def listed(self, folio: str) -> None:
        if not self.driver.find_elements(self.by.ID, f"trabajo-{folio}"):
            self.press("actualizar")  # assigned after the app read its list
        self.wait.until(lambda _: self.driver.find_elements(self.by.ID, f"trabajo-{folio}"),
                        f"job {folio} listed")

    def open_job(self, folio: str) -> None:
        self.listed(folio)
        self.find(f"trabajo-{folio}").find_element(self.by.TAG_NAME, "button").click()
        self.until_text("detalle-folio", folio)

    def network(self, conditions: dict) -> None:
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
        self.until_text("estado-red", "Sin conexión" if conditions["offline"] else "En línea")


@pytest.fixture
def phone(stack, browser, pedros_crew):
    """The browser signed in as Pedro through the demo page, its position allowed for crews."""
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": stack.crews.url, "permissions": ["geolocation"]})
    browser.execute_cdp_cmd("Network.enable", {})
    browser.get(f"{stack.crews.url}/app/")
    screen = Screen(browser)
    screen.press("entrar-demo")
    screen.wait.until(lambda b: b.find_element(
        screen.by.CSS_SELECTOR, "#cuadrilla-C-01 button[value='pedro']")).click()
    screen.wait.until(lambda _: "Cuadrilla C-01" in screen.text("sesion"), "signed in as Pedro")
    assert browser.current_url == f"{stack.crews.url}/app/"  # the token left the address bar
    return browser


def test_a_crew_works_a_job_through_a_network_cut_and_the_citizen_sees_every_step(
        stack, phone, tmp_path):
    from selenium.webdriver.support.select import Select

    folio = assigned_job(stack)
    screen = Screen(phone)
    screen.listed(folio)
    # On the map, drawn here: the pothole lies south-east of the crew (the phone's position).
    me = screen.wait.until(lambda b: b.find_element(screen.by.ID, "mi-posicion"))
    job = phone.find_element(screen.by.CSS_SELECTOR, f"#mapa [data-folio='{folio}'] circle")
    assert float(job.get_attribute("cx")) > float(me.get_attribute("cx"))
    assert float(job.get_attribute("cy")) > float(me.get_attribute("cy"))
    screen.open_job(folio)
    assert screen.text("detalle-paso") == "Asignado"
    screen.press("paso-dispatched")
    screen.until_text("detalle-paso", "Cuadrilla en salida")
    screen.until_text("pendientes", "0")
    assert timeline(stack, folio)[-1] == "crew_dispatched"
    # The app's own files are kept by its service worker by now, for opening offline.
    kept = phone.execute_async_script(
        "navigator.serviceWorker.ready.then(() => caches.keys()).then((names) => "
        "Promise.all(names.map((n) => caches.open(n).then((c) => c.keys()))))"
        ".then((lists) => arguments[0](lists.flat().map((r) => r.url)))")
    assert f"{stack.crews.url}/app/app.js" in kept and f"{stack.crews.url}/app/" in kept
    assert not [url for url in kept if "/field/" in url or "/materials" in url]

    screen.network(OFFLINE)
    screen.find("eta-minutos").send_keys("15")
    screen.press("paso-en_route")
    screen.until_text("pendientes", "1")
    assert screen.text("detalle-paso") == "En camino"  # moved on, though not sent
    screen.press("paso-arrived")
    screen.until_text("pendientes", "2")
    assert screen.text("detalle-paso") == "Cuadrilla en el sitio"
    photo = tmp_path / "bache.png"
    photo.write_bytes(tiny_png(32, 24))
    screen.wait.until(lambda _: screen.find("form-foto").is_displayed())
    screen.find("foto-archivo").send_keys(str(photo))
    screen.find("foto-pie").send_keys("El bache antes de rellenarlo")
    Select(screen.find("foto-etapa")).select_by_value("before")
    screen.press("foto-enviar")
    screen.until_text("pendientes", "3")
    Select(screen.find("material-codigo")).select_by_value("MEZ-ASF")
    screen.find("material-cantidad").send_keys("0.5")
    screen.press("material-enviar")
    screen.until_text("pendientes", "4")
    waiting = screen.text("lista-pendientes").splitlines()
    assert [line.split(" · ")[:2] for line in waiting] == [
        [folio, "En camino"], [folio, "Llegada"], [folio, "Foto (antes)"],
        [folio, "Materiales"]]
    assert timeline(stack, folio)[-1] == "crew_dispatched"  # nothing reached the city

    # Crews itself goes away too (the page's emulated cut does not reach its service worker's
    # own requests). Closed and opened again, the app comes from what its service worker kept,
    # the job and the outbox from IndexedDB; back online with the service still away, a failed
    # try keeps every update.
    stack.crews.stop()
    try:
        phone.refresh()
        screen.until_text("pendientes", "4")
        screen.open_job(folio)
        assert screen.text("detalle-paso") == "Cuadrilla en el sitio"
        assert screen.text("estado-red") == "Sin conexión"
        screen.network(ONLINE)
        screen.wait.until(lambda _: "se reintentará" in screen.text("envio"), "a failed try")
        assert screen.text("pendientes") == "4"
    finally:
        stack.crews.start()
    screen.press("sincronizar")
    screen.until_text("pendientes", "0")
    assert timeline(stack, folio)[-5:] == [
        "crew_dispatched", "crew_en_route", "crew_arrived", "photo_added", "materials_logged"]
    # The three steps went as /field/sync batches (crews counts them since its restart), the
    # photo through its own door.
    counted = requests.get(f"{stack.crews.url}/metrics", timeout=10).text
    assert 'expediente_offline_updates_synced_total{outcome="applied"} 3.0' in counted
    assert screen.text("rechazados") == ""
    position = requests.get(f"{stack.crews.url}/crews/C-01", headers=CREW, timeout=10).json()
    assert position["position"]["lat"] == pytest.approx(WHERE["latitude"])  # the phone's
    screen.find("notas").send_keys("Bache rellenado con mezcla asfáltica y compactado")
    screen.press("paso-work_completed")
    screen.until_text("detalle-paso", "Trabajo terminado")
    screen.until_text("pendientes", "0")
    assert timeline(stack, folio)[-1] == "work_completed"

    phone.get(f"{stack.tracking.url}/seguimiento/{folio}")
    page = phone.page_source
    for label in ("La cuadrilla salió", "La cuadrilla va en camino", "Llegada estimada",
                  "La cuadrilla llegó", "Foto agregada", "Materiales registrados",
                  "0.5 m3 Mezcla asfáltica en frío", "Trabajo terminado"):
        assert label in page, label
    picture = phone.find_element(screen.by.CSS_SELECTOR,
                                 "img[alt='El bache antes de rellenarlo']")
    screen.wait.until(lambda b: b.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", picture))
    assert phone.execute_script("return arguments[0].naturalWidth", picture) == 32


def test_a_step_for_a_job_taken_away_while_offline_is_refused_and_shown(stack, phone):
    folio = assigned_job(stack)
    screen = Screen(phone)
    screen.open_job(folio)
    screen.network(OFFLINE)
    screen.press("paso-dispatched")
    screen.until_text("pendientes", "1")
    taken = requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                          json={"crew_id": "C-02"}, headers=auth("supervisor"))
    assert taken.status_code == 200, taken.text
    screen.network(ONLINE)
    screen.until_text("pendientes", "0")
    screen.wait.until(lambda _: folio in screen.text("rechazados"), "the refusal shown")
    assert "not_assigned_crew" in screen.text("rechazados")
    assert "crew_dispatched" not in timeline(stack, folio)
    # The job is no longer C-01's: it leaves the list once the work list follows the change.
    screen.wait.until(lambda _: not phone.find_elements(screen.by.ID, f"trabajo-{folio}"),
                      "the job gone from the list")
    assert screen.find("detalle").get_attribute("hidden") is not None


def test_a_crew_member_signs_in_with_the_citys_identity_provider(
        stack, browser, identity_provider, pedros_crew):
    browser.get(f"{stack.crews.url}/app/")
    screen = Screen(browser)
    screen.press("entrar")  # to the provider and back with a code, exchanged with PKCE
    screen.wait.until(lambda _: screen.text("sesion").startswith("ana"), "signed in as Ana")
    assert identity_provider.tokens_given == 1
    assert browser.current_url == f"{stack.crews.url}/app/"  # no code left in the address
    screen.open_job(assigned_job(stack))  # the provider's token opens C-01's jobs
