"""`expediente-tracking`: tracking's operator commands (rebuild the read models, report lag)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import shared.chassis  # noqa: F401  (PSYCOPG_WAIT_FUNC before psycopg loads)
from shared.chassis.config import load_config

from .dependencies import app_env

CONFIG = os.path.join(os.path.dirname(__file__), "config.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expediente-tracking", description=__doc__)
    parser.add_argument("--config", default=CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rebuild-projection", help="wipe and rebuild the report views from the events")
    sub.add_parser("lag", help="how many events the views and the relay are behind")
    args = parser.parse_args(argv)

    from .read.projection import rebuild_command

    env = app_env(load_config(args.config))
    if args.command == "rebuild-projection":
        print(json.dumps(rebuild_command(env)))
        return 0
    from .read.projection import ReportProjector
    from .write.application import TrackingApplication

    app = TrackingApplication(env=env)
    try:
        print(json.dumps({"projection_lag": ReportProjector(app).lag()}))
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
