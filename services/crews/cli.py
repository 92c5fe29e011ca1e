"""`expediente-crews`: crews and the materials catalog from the operator's terminal.

    expediente-crews create-crew C-41 "Bacheo Juriquilla" obras_publicas
    expediente-crews add-member C-41 ramon "Ramón Flores"
    expediente-crews remove-member C-41 ramon
    expediente-crews show C-41
    expediente-crews add-material MEZ-ASF "Mezcla asfáltica en frío" m3 1850.00 [--from ISO]
    expediente-crews change-price MEZ-ASF 1990.50 --from 2027-01-01T00:00:00-06:00
    expediente-crews load-materials services/crews/materials_seed.json [--from ISO]

It writes to the store the environment names (as the service does: PERSISTENCE_MODULE and the
CREWS_* settings); the service's views follow within a moment. Input is checked by the same
schemas as the HTTP doors: a bad value is refused with the reason, and nothing is written.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError

import shared.chassis  # noqa: F401  (PSYCOPG_WAIT_FUNC before psycopg loads)
from shared.chassis.config import load_config
from shared.chassis.runtime import app_env

from . import schemas
from .application import AlreadyExists, CrewNotFound, CrewsApplication, MaterialNotFound
from .dependencies import APP_KEYS
from .domainmodel import CrewsError
from .read import view_of

CONFIG = os.path.join(os.path.dirname(__file__), "config.yaml")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expediente-crews", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--by", default=f"cli:{getpass.getuser()}",
                        help="who is recorded as making the change")
    sub = parser.add_subparsers(dest="command", required=True)
    crew = sub.add_parser("create-crew", help="a new crew of a department")
    crew.add_argument("code"), crew.add_argument("name"), crew.add_argument("department")
    member = sub.add_parser("add-member", help="a member joins a crew")
    member.add_argument("code"), member.add_argument("member_id"), member.add_argument("name")
    gone = sub.add_parser("remove-member", help="a member leaves a crew")
    gone.add_argument("code"), gone.add_argument("member_id")
    show = sub.add_parser("show", help="a crew or a material as it stands (JSON)")
    show.add_argument("code")
    material = sub.add_parser("add-material", help="a new material with its first price")
    for name in ("code", "description", "unit", "unit_cost"):
        material.add_argument(name)
    material.add_argument("--from", dest="effective_at", help="ISO time with zone (default: now)")
    price = sub.add_parser("change-price", help="a new unit cost from a moment on")
    price.add_argument("code"), price.add_argument("unit_cost")
    price.add_argument("--from", dest="effective_at", required=True, help="ISO time with zone")
    load = sub.add_parser("load-materials", help="add the materials of a JSON file (a code "
                                                 "already there is left as it is)")
    load.add_argument("path")
    load.add_argument("--from", dest="effective_at", help="ISO time with zone (default: now)")
    return parser


def checked(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """`data` as the HTTP door would take it (None values left out), or ValidationError."""
    return schema.load({k: v for k, v in data.items() if v is not None})  # type: ignore[no-any-return]


def run(app: CrewsApplication, args: argparse.Namespace, now: datetime) -> Any:
    """The command's result, as JSON-ready data."""
    by = args.by
    if args.command == "create-crew":
        data = checked(schemas.NewCrewSchema(), {"code": args.code, "name": args.name,
                                                 "department": args.department})
        return view_of(app.create_crew(data["code"], data["name"], data["department"], by=by))
    if args.command == "add-member":
        data = checked(schemas.MemberSchema(), {"member_id": args.member_id, "name": args.name})
        return view_of(app.join(args.code, data["member_id"], data["name"], by=by))
    if args.command == "remove-member":
        return view_of(app.leave(args.code, args.member_id, by=by))
    if args.command == "show":
        try:
            return view_of(app.crew(args.code))
        except CrewNotFound:
            return view_of(app.material(args.code))
    if args.command == "add-material":
        return add_material(app, material_data({k: getattr(args, k) for k in (
            "code", "description", "unit", "unit_cost", "effective_at")}), by, now)
    if args.command == "change-price":
        data = checked(schemas.PriceSchema(), {"unit_cost": args.unit_cost,
                                               "effective_at": args.effective_at})
        return view_of(app.change_price(args.code, data["unit_cost"], data["effective_at"],
                                        by=by))
    with open(args.path, encoding="utf-8") as file:
        entries = json.load(file)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("the file holds a JSON list of materials (objects)")
    materials = []  # every entry checked before the first is added: a bad file adds nothing
    for number, entry in enumerate(entries, 1):
        try:
            materials.append(material_data({**entry, "effective_at": args.effective_at}))
        except ValidationError as error:
            raise ValidationError({f"entry {number}": error.messages}) from None
    added, kept = [], []
    for data in materials:
        try:
            add_material(app, data, by, now)
            added.append(data["code"])
        except AlreadyExists:
            kept.append(data["code"])
    return {"added": added, "already_there": kept}


def material_data(given: dict[str, Any]) -> dict[str, Any]:
    fields = ("code", "description", "unit", "unit_cost", "effective_at")
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    return checked(schemas.NewMaterialSchema(), {k: given.get(k) for k in fields})


def add_material(app: CrewsApplication, data: dict[str, Any], by: str,
                 now: datetime) -> dict[str, Any]:
    """A material checked by `material_data`, priced from its `effective_at` or now."""
    return view_of(app.add_material(data["code"], data["description"], data["unit"],
                                    data["unit_cost"], data["effective_at"] or now, by=by))


def main(argv: list[str] | None = None,
         application: Callable[[dict[str, str]], CrewsApplication] = CrewsApplication) -> int:
    args = parser().parse_args(argv)
    config = load_config(args.config)
    app = application(app_env(config, APP_KEYS))
    try:
        zone = ZoneInfo(str(config.get("TIMEZONE") or "America/Mexico_City"))
        print(json.dumps(run(app, args, datetime.now(zone)), indent=2, ensure_ascii=False))
        return 0
    except ValidationError as error:
        print(f"refused: {json.dumps(error.messages, ensure_ascii=False)}", file=sys.stderr)
    except (CrewsError, AlreadyExists, CrewNotFound, MaterialNotFound) as error:
        print(f"refused: {error}", file=sys.stderr)
    except (OSError, ValueError) as error:
        print(f"could not read the file: {error}", file=sys.stderr)
    finally:
        app.close()
    return 2


if __name__ == "__main__":
    sys.exit(main())
