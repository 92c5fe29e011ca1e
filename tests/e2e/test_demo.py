"""`make run`'s demo data loads against running services: the reports come in through intake's
doors and are walked through tracking's steps with the roles the README shows; the crews and
the materials catalog are made through crews' own doors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.billingstack import BillingStack
from tests.support import bearer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Every service the demo loads data into: billing's accounts too."""
    running = BillingStack(tmp_path_factory.mktemp("demo")).start()
    yield running
    running.stop()


def test_the_demo_data_loads_and_walks_the_pothole_to_closed(stack, tmp_path):
    marker = tmp_path / "demo-loaded"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AMQP_URI": stack.amqp_uri,
           "INTAKE_URL": stack.intake.url, "CREWS_URL": stack.crews.url,
           "DEMO_MARKER": str(marker)}
    run = subprocess.run([sys.executable, "deploy/local/demo.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert "demo reports:" in run.stdout
    pothole, light, leak = marker.read_text().split()
    views = {folio: requests.get(f"{stack.tracking.url}/reports/{folio}",
                                 headers=bearer("auditor"), timeout=10).json()
             for folio in (pothole, light, leak)}
    assert views[pothole]["status"] == "closed" and views[pothole]["resolution"] == "fixed"
    assert views[light]["crew_id"] == "C-02"
    assert views[leak]["channel"] == "window"
    crews = requests.get(f"{stack.crews.url}/crews", headers=bearer("supervisor"),
                         timeout=10).json()["crews"]
    assert len(crews) == 40 and all(crew["members"] for crew in crews)
    assert sum(crew["on_shift"] for crew in crews) == 20
    materials = requests.get(f"{stack.crews.url}/materials", headers=bearer("crew"),
                             timeout=10).json()["materials"]
    assert {"MEZ-ASF", "LAM-LED"} <= {material["code"] for material in materials}

    predial = requests.get(f"{stack.billing.url}/api/cuentas/predial/14-001-0123-045",
                           params={"check": "7391"}, timeout=10).json()
    assert predial["lines"][0]["kind"] == "charge" and predial["totals"]["payments"] == "0.00"
    water = requests.get(f"{stack.billing.url}/api/cuentas/agua/AG-004512",
                         params={"check": "5521"}, timeout=10).json()
    assert [line["kind"] for line in water["lines"]] == ["charge", "charge"]
    fine = requests.get(f"{stack.billing.url}/api/cuentas/multas/M-2026-000123",
                        params={"check": "UQR123A"}, timeout=10).json()
    assert fine["to_pay"]["discount"] == fine["to_pay"]["amount"]  # half, paid within 10 days
    cost = requests.get(f"{stack.billing.url}/costs/reports/{pothole}",
                        headers=bearer("supervisor"), timeout=10)
    deadline = time.monotonic() + 30  # the report events reach billing over the bus
    while cost.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
        cost = requests.get(f"{stack.billing.url}/costs/reports/{pothole}",
                            headers=bearer("supervisor"), timeout=10)
    assert cost.json()["total"] == "925.00"  # 0.5 m³ of MEZ-ASF at 1850.00, priced by crews

    again = subprocess.run([sys.executable, "deploy/local/demo.py"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already loaded" in again.stdout
    assert "demo crews" not in again.stdout  # made once
