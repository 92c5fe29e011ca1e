"""A citizen in a real (headless) Chromium: opens the portal, picks «Bache», fills the form with
their phone's location and a photo, gets a folio, and looks it up.

Uses Debian's chromium and chromedriver (deploy/local/test.sh installs them). Without them this
test fails: CI must run it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_portal import tiny_png

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=412,915")
WHERE = {"latitude": 20.6732, "longitude": -100.4311, "accuracy": 10}


@pytest.fixture
def browser(tmp_path, stack):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install -y chromium "
                    "chromium-driver (deploy/local/test.sh does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    # The phone's location, as if the citizen allowed it.
    driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": stack.intake.url, "permissions": ["geolocation"]})
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride", WHERE)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_a_citizen_reports_a_pothole_with_a_photo_and_looks_up_the_folio(stack, browser,
                                                                         tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    photo = tmp_path / "bache.png"
    photo.write_bytes(tiny_png(32, 24))

    browser.get(f"{stack.intake.url}/")
    browser.find_element(By.XPATH, "//a[strong[normalize-space()='Bache']]").click()
    wait.until(shown.title_contains("Reportar: Bache"))

    # Sent half-filled first: the form comes back with what is missing, in Spanish.
    browser.find_element(By.ID, "description").send_keys("Bache hondo en la esquina")
    browser.find_element(By.ID, "enviar").click()
    wait.until(shown.presence_of_element_located((By.ID, "errores")))
    assert "Responde esta pregunta." in browser.page_source
    assert browser.find_element(By.ID, "description").get_attribute("value") == \
        "Bache hondo en la esquina"

    Select(browser.find_element(By.ID, "q-tamano")).select_by_visible_text("Grande (más de 1 m)")
    browser.find_element(By.ID, "ubicarme").click()
    wait.until(lambda b: b.find_element(By.ID, "lat").get_attribute("value"))
    assert float(browser.find_element(By.ID, "lat").get_attribute("value")) == \
        pytest.approx(WHERE["latitude"])
    assert float(browser.find_element(By.ID, "long").get_attribute("value")) == \
        pytest.approx(WHERE["longitude"])
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    browser.find_element(By.ID, "email").send_keys("vecina@example.com")
    browser.find_element(By.ID, "enviar").click()

    folio = wait.until(shown.presence_of_element_located((By.ID, "folio"))).text
    assert re.fullmatch(r"QRO-\d{4}-\d{6}", folio), folio
    assert "¡Recibimos tu reporte!" in browser.page_source
    private = browser.find_element(By.ID, "enlace-privado").get_attribute("href")
    assert re.search(rf"/seguimiento/{folio}\?token=[0-9A-Za-z_\-]+$", private), private

    browser.find_element(By.LINK_TEXT, "Consultar folio").click()
    # The receipt shows the folio under the same id: wait for the lookup form's box itself.
    box = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input#folio")))
    box.send_keys(folio.lower())
    box.submit()
    wait.until(shown.title_contains(f"Reporte {folio}"))  # tracking's status page, the one page
    assert browser.find_element(By.ID, "folio").text == folio
    assert "Reporte recibido" in browser.page_source
    assert "Bache hondo en la esquina" in browser.page_source
    picture = browser.find_element(By.CSS_SELECTOR, "img[alt='Foto enviada con el reporte']")
    wait.until(lambda b: b.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", picture))
    assert browser.execute_script("return arguments[0].naturalWidth", picture) == 32
