"""Demo data for `make run`: a few reports around Querétaro, opened through intake (the 070 line,
the app, a window) and moved through their steps by tracking's RPC."""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import os  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from deploy.local import demo_billing, demo_crews  # noqa: E402
from shared.chassis.auth import mint_token  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MARKER = Path(os.environ.get("DEMO_MARKER") or ROOT / "var" / "demo-loaded")
CONFIG = {"AMQP_URI": os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//")}

INTAKE = os.environ.get("INTAKE_URL", "http://127.0.0.1:8000")
CREWS = os.environ.get("CREWS_URL", "http://127.0.0.1:8002")
# (door, body): reports come in through intake, as citizens and operators send them.
REPORTS = [
    ("/staff/reports", {"channel": "phone_070", "service_code": "bache",
                        "description": "Bache profundo frente a la escuela",
                        "location": {"lat": 20.5931, "long": -100.3920},
                        "answers": {"tamano": "grande", "carril": "arroyo"},
                        # The caller asked to be told of each step: mail lands in var/mail.
                        "contact": {"first_name": "Ana", "email": "ana.vecina@example.com",
                                    "phone": "+52 442 123 4567",
                                    "notify_by": ["email", "sms"]}}),
    ("/api/v1/reports", {"service_code": "alumbrado_publico",
                         "description": "Luminaria apagada toda la cuadra",
                         "location": {"lat": 20.6010, "long": -100.3850},
                         "answers": {"falla": "apagada"}}),
    ("/staff/reports", {"channel": "window", "service_code": "fuga_agua",
                        "description": "Fuga en la banqueta desde ayer",
                        "location": {"lat": 20.5880, "long": -100.4010,
                                     "address": "Av. Zaragoza 120, Centro"},
                        "answers": {"intensidad": "chorro"}}),
]


def submit(door: str, body: dict) -> str:
    token = mint_token("demo-operator", ("operator",))
    request = urllib.request.Request(
        INTAKE + door, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 "Idempotency-Key": f"demo-{uuid.uuid4()}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["folio"]


def field_step(folio: str, step: dict) -> None:
    """A step as the crew's phone sends it to crews (materials are priced there, from the
    catalog: billing costs the repair from that price)."""
    token = mint_token("demo-crew", ("crew",), crew_id="C-01")
    body = {"step_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
            **step}
    request = urllib.request.Request(
        f"{CREWS}/field/reports/{folio}/steps", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30):
        pass


def as_role(role: str, **claims: str) -> ClusterRpcProxy:
    token = mint_token(f"demo-{role}", (role,), **claims)
    return ClusterRpcProxy(CONFIG, context_data={"authorization": f"Bearer {token}"}, timeout=30)


def main() -> None:
    crews = demo_crews.seed()
    if crews:
        print(f"demo crews: {crews} (C-01 … C-40), and the materials catalog")
    accounts = demo_billing.seed(CONFIG)
    if accounts:
        print(f"demo accounts: {', '.join(accounts)}")
    if MARKER.exists():
        print(f"demo data already loaded: {MARKER.read_text().strip()}")
        return
    folios = [submit(door, body) for door, body in REPORTS]
    pothole, light, _leak = folios
    # Each department's supervisor assigns its own report (a token may name the department).
    with as_role("supervisor", department="obras_publicas") as rpc:
        rpc.tracking.run_command("assign", pothole, {"crew_id": "C-01"})
    with as_role("supervisor", department="servicios_publicos") as rpc:
        rpc.tracking.run_command("assign", light, {"crew_id": "C-02"})
    for step in ("dispatched", "en_route", "arrived"):
        field_step(pothole, {"step": step})
    field_step(pothole, {"step": "materials", "items": [{"code": "MEZ-ASF", "quantity": "0.5"}]})
    field_step(pothole, {"step": "work_completed", "notes": "Bache rellenado"})
    with as_role("supervisor") as rpc:
        rpc.tracking.run_command("close_report", pothole, {"resolution": "fixed"})
    MARKER.write_text(" ".join(folios) + "\n")
    print("demo reports: " + ", ".join(folios))
    for folio in folios:
        print(f"  http://127.0.0.1:8001/seguimiento/{folio}")


if __name__ == "__main__":
    main()
