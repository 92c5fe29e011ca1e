"""The bulletin's read model: reports opened and closed per category, counted from the events."""

from __future__ import annotations

from typing import Any

from shared.chassis.consumer import SqlStoreProvider
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing
from shared.contracts.cloudevents import CloudEvent

TABLES = {
    "bulletin_reports": "CREATE TABLE bulletin_reports (folio TEXT PRIMARY KEY, "
                        "service_code TEXT NOT NULL)",
    "bulletin_tally": "CREATE TABLE bulletin_tally (service_code TEXT PRIMARY KEY, "
                      "opened INTEGER NOT NULL, closed INTEGER NOT NULL)",
}


class NothingCounted(LookupError):
    """No report of this category has been heard of."""


class NotOpenedYet(LookupError):
    """A closing heard before its report's opening (the consumer retries it)."""


class TallyStore(SqlStoreProvider):
    """`self.store`: the service's SqlStore, with the bulletin's tables made at start-up."""

    def setup(self) -> None:
        super().setup()
        create_missing(self.store, TABLES)


def count(tx: Tx, event: CloudEvent) -> None:
    """An opening counts for its category; a closing for the category the report was opened in."""
    if event.type == "mx.expediente.report.opened":
        code = event.data["service_code"]
        tx.execute("INSERT INTO bulletin_reports (folio, service_code) VALUES (%s, %s)",
                   (event.subject, code))
        tx.execute("INSERT INTO bulletin_tally (service_code, opened, closed) VALUES (%s, 1, 0) "
                   "ON CONFLICT (service_code) DO UPDATE SET opened = bulletin_tally.opened + 1",
                   (code,))
        return
    found = tx.execute("SELECT service_code FROM bulletin_reports WHERE folio = %s",
                       (event.subject,)).fetchall()
    if not found:
        raise NotOpenedYet(event.subject)
    tx.execute("UPDATE bulletin_tally SET closed = closed + 1 WHERE service_code = %s", found[0])


def read(store: SqlStore, service_code: str) -> dict[str, Any]:
    rows, _ = store.run("SELECT opened, closed FROM bulletin_tally WHERE service_code = %s",
                        (service_code,))
    if not rows:
        raise NothingCounted(service_code)
    opened, closed = rows[0]
    return {"service_code": service_code, "opened": opened, "closed": closed}
