"""Demo accounts for `make run`, opened as the area's clerks would: a predial account in its
January early-payment discount (next year's levy, 15 % until January 31), a water contract with two
months of meter readings, and an unpaid traffic fine inside its prompt-payment window. Each is
opened once (a second run finds them there)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from services.billing.rulesfile import RULES
from shared.chassis.auth import mint_token

PREDIAL = {"kind": "predial", "key": "14-001-0123-045", "check": "7391",
           "holder": "María Guadalupe López Ramírez",
           "description": "Av. Juárez 12, Centro Histórico", "cadastral_value": "1250000.00"}
WATER = {"kind": "agua", "key": "AG-004512", "check": "5521", "holder": "Jorge Hernández Pérez",
         "description": "Calle Hidalgo 240, Col. Niños Héroes", "initial_reading": "1200"}
FINE = {"kind": "multas", "key": "M-2026-000123", "check": "UQR123A",
        "holder": "Conductor de la placa UQR123A", "description": "Vehículo placa UQR123A",
        "plate": "UQR123A", "offence": "semaforo_rojo"}


def clerk(config: dict[str, Any], area: str) -> ClusterRpcProxy:
    token = mint_token(f"demo-ventanilla-{area}", ("billing_clerk",), area=area)
    return ClusterRpcProxy(config, context_data={"authorization": f"Bearer {token}"},
                           timeout=30)


def seed(config: dict[str, Any], today: date | None = None) -> list[str]:
    """Open the three demo accounts unless they exist; the keys of those opened."""
    today = today or date.today()
    opened = []
    with clerk(config, "predial") as rpc:
        if _open(rpc, PREDIAL):
            rpc.billing.assess_predial(PREDIAL["key"], levy_year(today))
            opened.append(f"predial {PREDIAL['key']} (verificador {PREDIAL['check']})")
    with clerk(config, "agua") as rpc:
        if _open(rpc, {**WATER, "opened_on": (today - timedelta(days=70)).isoformat()}):
            for days_ago, reading in ((40, "1218"), (10, "1243")):
                rpc.billing.record_reading(WATER["key"], {
                    "read_on": (today - timedelta(days=days_ago)).isoformat(),
                    "reading": reading})
            opened.append(f"agua {WATER['key']} (verificador {WATER['check']})")
    with clerk(config, "multas") as rpc:
        if _open(rpc, {**FINE, "ticket_on": (today - timedelta(days=3)).isoformat()}):
            opened.append(f"multa {FINE['key']} (placa {FINE['check']})")
    return opened


def levy_year(today: date) -> int:
    """The year whose January discount is next (this one in January), if its rules are there;
    else the latest year an admin has written rules for."""
    year = today.year if today.month == 1 else today.year + 1
    written = sorted(int(path.stem.rsplit("-", 1)[1]) for path in RULES.glob("predial-*.yaml"))
    return year if year in written else written[-1]


def _open(rpc: Any, account: dict[str, Any]) -> bool:
    try:
        rpc.billing.open_account(account)
    except RemoteError as error:
        if "already_exists" in str(error.value) or "exists already" in str(error.value):
            return False
        raise
    return True
