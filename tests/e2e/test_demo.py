"""`make run`'s demo data loads against running services: the reports come in through intake's
doors and are walked through tracking's steps with the roles the README shows; the crews and
the materials catalog are made through crews' own doors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import bearer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


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

    again = subprocess.run([sys.executable, "deploy/local/demo.py"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already loaded" in again.stdout
    assert "demo crews" not in again.stdout  # made once
