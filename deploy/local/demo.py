"""Demo data for `make run`: a few reports around Querétaro at different steps, through RPC."""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from shared.auth import mint_token  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MARKER = ROOT / "var" / "demo-loaded"
CONFIG = {"AMQP_URI": os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//")}

REPORTS = [
    ("bache", "Bache", "obras_publicas", "Bache profundo frente a la escuela", 20.5931, -100.3920,
     "phone_070"),
    ("alumbrado", "Alumbrado público", "servicios_publicos", "Luminaria apagada toda la cuadra",
     20.6010, -100.3850, "web"),
    ("fuga_agua", "Fuga de agua", "agua", "Fuga en la banqueta desde ayer", 20.5880, -100.4010,
     "window"),
]


def as_role(role: str, **claims: str) -> ClusterRpcProxy:
    token = mint_token(f"demo-{role}", (role,), **claims)
    return ClusterRpcProxy(CONFIG, context_data={"authorization": f"Bearer {token}"}, timeout=30)


def main() -> None:
    if MARKER.exists():
        print(f"demo data already loaded: {MARKER.read_text().strip()}")
        return
    folios = []
    with as_role("operator") as rpc:
        for code, name, department, text, lat, long, channel in REPORTS:
            opened = rpc.tracking.open_report({
                "service_code": code, "service_name": name, "department": department,
                "description": text, "location": {"lat": lat, "long": long},
                "channel": channel, "sla_hours": 72,
            })
            folios.append(opened["folio"])
    pothole, light, _leak = folios
    with as_role("supervisor", department="obras_publicas") as rpc:
        rpc.tracking.run_command("assign", pothole, {"crew_id": "C-01"})
        rpc.tracking.run_command("assign", light, {"crew_id": "C-02"})
    with as_role("crew", crew_id="C-01") as rpc:
        for step in ("dispatch_crew", "set_en_route", "arrive"):
            rpc.tracking.run_command(step, pothole, {})
        rpc.tracking.run_command("log_materials", pothole, {
            "items": [{"code": "MEZ-ASF", "quantity": 0.5, "unit": "m3",
                       "description": "Mezcla asfáltica en frío"}]})
        rpc.tracking.run_command("complete_work", pothole, {"notes": "Bache rellenado"})
    with as_role("supervisor") as rpc:
        rpc.tracking.run_command("close_report", pothole, {"resolution": "fixed"})
    MARKER.write_text(" ".join(folios) + "\n")
    print("demo reports: " + ", ".join(folios))
    for folio in folios:
        print(f"  http://127.0.0.1:8001/seguimiento/{folio}")


if __name__ == "__main__":
    main()
