"""Municipal systems' webhook registrations: an endpoint, the event types and departments it wants
(empty: all), and its signing secrets. A rotation adds a new secret and keeps the old one valid
for ROTATION_OVERLAP, so a receiver can switch without missing a delivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from shared.chassis.sqlstore import SqlStore, Tx

from . import deliveries as log_
from .webhooks import new_secret

ROTATION_OVERLAP = timedelta(hours=24)
COLUMNS = "id, owner, url, types, departments, secrets, status, created_at"


class WebhookNotFound(LookupError):
    pass


def _row(row: Sequence[Any], *, with_secrets: bool = False) -> dict[str, Any]:
    found = {"id": row[0], "owner": row[1], "url": row[2], "types": json.loads(row[3]),
             "departments": json.loads(row[4]), "status": row[6], "created_at": row[7]}
    secrets = json.loads(row[5])
    found["secrets_valid"] = len(secrets)
    if with_secrets:
        found["secret"] = secrets[-1]["secret"]
    return found


def register(tx: Tx, owner: str, url: str, types: Sequence[str],
             departments: Sequence[str]) -> dict[str, Any]:
    hook_id = str(uuid.uuid4())
    secrets = [{"secret": new_secret(), "expires_at": None}]
    tx.execute(f"INSERT INTO webhooks ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, 'active', %s)",
               (hook_id, owner, url, json.dumps(sorted(set(types))),
                json.dumps(sorted(set(departments))), json.dumps(secrets),
                log_.stamp(log_.now())))
    return get(tx, hook_id, owner=None, with_secrets=True)


def get(tx: Tx, hook_id: str, *, owner: str | None, with_secrets: bool = False
        ) -> dict[str, Any]:
    """The webhook, if it exists and (unless `owner` is None: an admin) belongs to `owner`."""
    tx.execute(f"SELECT {COLUMNS} FROM webhooks WHERE id = %s AND status = 'active'", (hook_id,))
    row = tx.fetchone()
    if row is None or (owner is not None and row[1] != owner):
        raise WebhookNotFound(f"no webhook {hook_id}")
    return _row(row, with_secrets=with_secrets)


def listing(store: SqlStore, owner: str | None) -> list[dict[str, Any]]:
    sql = f"SELECT {COLUMNS} FROM webhooks WHERE status = 'active'"
    params: tuple[Any, ...] = ()
    if owner is not None:
        sql += " AND owner = %s"
        params = (owner,)
    rows, _ = store.run(sql + " ORDER BY created_at", params)
    return [_row(row) for row in rows]


def rotate(tx: Tx, hook_id: str, owner: str | None) -> dict[str, Any]:
    """A new secret, signing from now on beside the old ones until they expire."""
    get(tx, hook_id, owner=owner)
    tx.execute("SELECT secrets FROM webhooks WHERE id = %s", (hook_id,))
    row = tx.fetchone()
    assert row is not None
    at = log_.now()
    expires = log_.stamp(at + ROTATION_OVERLAP)
    kept = [{**entry, "expires_at": entry.get("expires_at") or expires}
            for entry in json.loads(row[0])
            if not entry.get("expires_at") or entry["expires_at"] > log_.stamp(at)]
    kept.append({"secret": new_secret(), "expires_at": None})
    tx.execute("UPDATE webhooks SET secrets = %s WHERE id = %s", (json.dumps(kept), hook_id))
    return get(tx, hook_id, owner=owner, with_secrets=True)


def delete(tx: Tx, hook_id: str, owner: str | None) -> None:
    get(tx, hook_id, owner=owner)
    tx.execute("UPDATE webhooks SET status = 'deleted', secrets = '[]' WHERE id = %s", (hook_id,))
    tx.execute("UPDATE deliveries SET status = 'cancelled', settled_at = %s WHERE webhook_id = %s "
               "AND status IN ('pending', 'sending')", (log_.stamp(log_.now()), hook_id))


def matching(tx: Tx, event_type: str, folio: str) -> list[str]:
    """The active webhooks that want this event type from the folio's department (read only
    when some webhook names departments)."""
    tx.execute("SELECT id, types, departments FROM webhooks WHERE status = 'active'")
    rows = tx.fetchall()
    department = (log_.department(tx, folio) if any(row[2] != "[]" for row in rows)
                  else None)
    found = []
    for hook_id, types, departments in rows:
        wanted_types, wanted_departments = json.loads(types), json.loads(departments)
        if wanted_types and event_type not in wanted_types:
            continue
        if wanted_departments and department not in wanted_departments:
            continue
        found.append(hook_id)
    return found
