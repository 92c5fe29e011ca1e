"""The raw eventsourcing append rate on PostgreSQL, in a plain process (no eventlet, psycopg's
own wait): one new aggregate (one event) per save, one after another. Prints the rate.

    .venv/bin/python -m bench.raw_append SCHEMA COUNT"""

from __future__ import annotations

import os
import sys
import time

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate


class Counter(Aggregate):
    def __init__(self) -> None:
        self.n = 0


def main() -> None:
    schema, count = sys.argv[1], int(sys.argv[2])
    app = Application(env={
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": os.environ.get("BENCH_PG_DBNAME", "test"),
        "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432",
        "POSTGRES_USER": os.environ.get("BENCH_PG_USER", "postgres"), "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": schema})
    app.save(Counter())  # warm the pool and the table
    started = time.perf_counter()
    for _ in range(count):
        app.save(Counter())
    print(count / (time.perf_counter() - started))
    app.close()


if __name__ == "__main__":
    main()
