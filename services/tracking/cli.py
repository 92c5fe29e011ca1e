"""`expediente-tracking`: tracking's operator commands (rebuild the read models, report lag, list
and retry the events the projection or the relay parked)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import shared.chassis  # noqa: F401  (PSYCOPG_WAIT_FUNC before psycopg loads)
from shared.chassis.config import load_config
from shared.chassis.parked import add_failures_command, failures_command
from shared.chassis.runtime import app_env

from .dependencies import APP_KEYS

CONFIG = os.path.join(os.path.dirname(__file__), "config.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expediente-tracking", description=__doc__)
    parser.add_argument("--config", default=CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rebuild-projection", help="wipe and rebuild the report views from the events")
    sub.add_parser("lag", help="how far the views and the relay are behind (events, seconds)")
    add_failures_command(sub)
    args = parser.parse_args(argv)

    config = load_config(args.config)
    if args.command == "rebuild-projection":
        from .read.projection import rebuild_command

        print(json.dumps(rebuild_command(app_env(config, APP_KEYS))))
        return 0
    from .dependencies import TrackingRuntime

    runtime = TrackingRuntime()
    runtime.build(config, "tracking")
    try:
        if args.command == "lag":
            ready, checks = runtime.readiness()
            print(json.dumps({"ready": ready, **checks}))
        else:
            print(json.dumps(failures_command(runtime.followers, args), indent=2))
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
