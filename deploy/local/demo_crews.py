"""Demo crews for `make run`: 40 crews across the catalog's departments, each with members, half
of them on shift somewhere in Querétaro, and the materials catalog (services/crews/
materials_seed.json), all created through crews' own HTTP doors as an admin would."""

from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shared.chassis.auth import mint_token

ROOT = Path(__file__).resolve().parents[2]
CREWS = os.environ.get("CREWS_URL", "http://127.0.0.1:8002")
# Departments of the service catalog (services/intake/catalog_seed.json), with what their crews
# are called; C-01 is public works' and C-02 public services' (the demo reports assign them).
DEPARTMENTS = [
    ("obras_publicas", "Bacheo"), ("servicios_publicos", "Alumbrado"),
    ("agua_potable", "Fugas"), ("parques_jardines", "Poda"), ("movilidad", "Señalamiento"),
    ("atencion_ciudadana", "Inspección"),
]
ZONES = ["Centro", "Norte", "Sur", "Oriente", "Poniente", "Juriquilla", "Santa Rosa Jáuregui"]
NAMES = ["Pedro", "Rosa", "Luis", "María", "Jorge", "Lupita", "Carlos", "Ana", "Miguel", "Sofía",
         "José", "Teresa", "Juan", "Alejandra", "Ramón", "Verónica"]
SURNAMES = ["Ramírez", "Hernández", "García", "Martínez", "López", "González", "Pérez", "Sánchez",
            "Rodríguez", "Flores", "Morales", "Jiménez"]


def post(path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        CREWS + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def seed() -> int:
    """Create the demo crews and materials; return how many crews (0 if they were there)."""
    admin = mint_token("demo-admin", ("admin",))
    rng = random.Random(2026)
    try:
        post("/crews", {"code": "C-01", "name": "Bacheo Centro", "department": "obras_publicas"},
             admin)
    except urllib.error.HTTPError as error:
        if error.code == 409:
            return 0  # loaded on an earlier run
        raise
    for number in range(1, 41):
        code = f"C-{number:02d}"
        department, kind = DEPARTMENTS[(number - 1) % len(DEPARTMENTS)]
        if number > 1:
            zone = ZONES[(number - 1) // len(DEPARTMENTS) % len(ZONES)]
            post("/crews", {"code": code, "name": f"{kind} {zone}",
                            "department": department}, admin)
        for member in range(rng.randint(2, 4)):
            name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
            post(f"/crews/{code}/members", {"member_id": f"{code.lower()}-{member + 1}",
                                            "name": name}, admin)
        if number % 2:  # half the crews are out now, somewhere in the city
            post(f"/crews/{code}/shift", {"action": "start"}, admin)
            post(f"/crews/{code}/position", {"lat": round(rng.uniform(20.55, 20.68), 5),
                                             "long": round(rng.uniform(-100.46, -100.34), 5)},
                 admin)
    for material in json.loads((ROOT / "services/crews/materials_seed.json").read_text("utf-8")):
        post("/materials", {**material, "effective_at": "2026-01-01T00:00:00-06:00"}, admin)
    return 40
