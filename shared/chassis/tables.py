"""Creating a service's own tables and indexes at start-up without getting in a running
replica's way: look in the catalog first, and only when something is missing create it in a short
transaction of its own, under the schema's DDL lock.

Why: `CREATE INDEX IF NOT EXISTS` takes a SHARE lock on its table even when the index is there,
and a replica starting under load that then touched a row a running batch held (its position)
deadlocked with that batch, which takes the same locks in the other order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from shared.chassis.sqlstore import SqlStore, Tx


def existing(store: SqlStore, names: Iterable[str]) -> set[str]:
    """Which of these tables or indexes exist in the store's schema."""
    names = list(names)
    if not names:
        return set()
    if store.dialect == "sqlite":
        sql = f"SELECT name FROM sqlite_master WHERE name IN ({', '.join(['%s'] * len(names))})"
        rows, _ = store.run(sql, names)
    else:
        rows, _ = store.run("SELECT relname FROM pg_class WHERE relname = ANY(%s) "
                            "AND relnamespace = current_schema()::regnamespace", (names,))
    return {row[0] for row in rows}


def create_missing(store: SqlStore, statements: Mapping[str, str], *,
                   look_for: Iterable[str] = (),
                   then: Callable[[Tx, set[str]], None] | None = None) -> bool:
    """Run the CREATE statements (table or index name: statement) whose object is missing,
    then `then(tx, present)` in the same transaction (`present`: the names of `statements` and
    `look_for` found before); nothing at all when every object exists. True if it created."""
    present = existing(store, [*statements, *look_for])
    if set(statements) <= present:
        return False
    with store.transaction() as tx:
        tx.lock_schema()
        for name, statement in statements.items():
            if name not in present:
                tx.execute(statement)
        if then is not None:
            then(tx, present)
    return True
