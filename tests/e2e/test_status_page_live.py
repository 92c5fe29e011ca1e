"""A citizen keeps their report's status page open in a real (headless) Chromium, against the
real tracking and notifications: a step the city records appears on the page as it happens,
without a reload, and the private view stays private; the page offers "Avísame" (web push).
Then notifications goes away: the page says it is no longer live, two steps are recorded
meanwhile, and when notifications is back the browser's stream reconnects by itself, resumes
after the last step it heard, and the page shows both, each once.

Uses Debian's chromium and chromedriver through tests/e2e/test_portal_browser.py's fixture."""

from __future__ import annotations

import pytest
import requests

from shared.chassis.auth import mint_token
from tests.e2e import test_portal_browser
from tests.notifystack import NotificationsStack
from tests.support import wait_for

pytestmark = pytest.mark.e2e

browser = test_portal_browser.browser  # headless Chromium
POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente al mercado", "location": {"lat": 20.59, "long": -100.39},
           "channel": "phone_070"}
# Notifications' stream of a folio catches up from its store at least every heartbeat (15 s).
STREAM_WAIT = 45


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'e2e-{role}', (role,))}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = NotificationsStack(tmp_path_factory.mktemp("live")).start()
    yield running
    running.stop()


def record(stack, folio: str, command: str, **body: str) -> None:
    """A step recorded by a supervisor through tracking's API."""
    answer = requests.post(f"{stack.tracking.url}/reports/{folio}/{command}", json=body,
                           headers=auth("supervisor"), timeout=20)
    assert answer.status_code == 200, (command, answer.text)


class StatusPage:
    """The status page as the citizen sees it; elements are looked up afresh each time (a live
    update replaces them)."""

    def __init__(self, driver) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        self.driver, self.by, self.stale = driver, By, StaleElementReferenceException

    def steps(self) -> list[str]:
        try:
            return [item.text for item in self.driver.find_elements(
                self.by.CSS_SELECTOR, "ol.linea > li > strong")]
        except self.stale:
            return []

    def live(self) -> bool:
        return self.driver.find_element(self.by.ID, "en-vivo").is_displayed()

    def offers_push(self) -> bool:
        return self.driver.find_element(self.by.ID, "avisos-push").is_displayed()

    def service_worker_scope(self) -> str:
        return str(self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.serviceWorker.register('/sw.js', {scope: '/'})"
            ".then(() => navigator.serviceWorker.ready)"
            ".then((registration) => done(registration.scope), (error) => done(String(error)));"))

    def not_reloaded(self) -> bool:
        return self.driver.execute_script("return window.sinRecargar === true") is True


def test_the_status_page_shows_each_step_as_it_happens_and_misses_none_across_a_drop(
        stack, browser):
    opened = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE, timeout=20,
                           headers=auth("operator"))
    assert opened.status_code == 201, opened.text
    folio, token = opened.json()["folio"], opened.json()["access_token"]
    record(stack, folio, "add_comment", text="Gracias, ya lo revisamos", visibility="private")

    browser.get(f"{stack.tracking.url}/seguimiento/{folio}?token={token}")
    page = StatusPage(browser)
    shown_before = ["Reporte recibido", "Comentario"]  # the private view: the comment too
    assert page.steps() == shown_before
    wait_for(page.live, timeout=STREAM_WAIT, message="the page to say it is live")
    wait_for(page.offers_push, message="«Avísame»: notifications has a push key")
    assert page.service_worker_scope() == f"{stack.tracking.url}/"  # what «Avísame» registers
    browser.execute_script("window.sinRecargar = true")  # gone if the page reloads

    record(stack, folio, "assign", crew_id="C-01")
    wait_for(lambda: page.steps() == [*shown_before, "Asignado a una cuadrilla"],
             timeout=STREAM_WAIT, message="the assignment on the open page")
    assert page.not_reloaded()
    assert "Vista privada" in browser.page_source
    assert "Gracias, ya lo revisamos" in browser.page_source  # the fresh copy is the private one

    stack.notifications.stop()
    wait_for(lambda: not page.live(), timeout=STREAM_WAIT, message="the page to stop being live")
    record(stack, folio, "dispatch_crew")
    record(stack, folio, "set_en_route")
    stack.notifications.start()

    expected = [*shown_before, "Asignado a una cuadrilla", "La cuadrilla salió",
                "La cuadrilla va en camino"]
    wait_for(lambda: page.steps() == expected, timeout=STREAM_WAIT,
             message="both steps recorded while notifications was away")
    wait_for(page.live, timeout=STREAM_WAIT, message="the page to be live again")
    assert page.not_reloaded()
    assert page.steps() == expected  # each once
