"""Reading billing's rules files (`services/billing/rules/<concept>-<year>.yaml`): every number
exact (never a float), every key known, every amount, percentage, date and block checked, and a
bad file refused with its name and the key at fault (RulesError). rules.py applies what is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from services.billing.money import exact, parse
from services.billing.rules import (
    Block,
    EarlyDiscount,
    FineRules,
    Offence,
    PredialRules,
    Rules,
    RulesError,
    WaterRules,
)

RULES = Path(__file__).with_name("rules")
CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")  # adulto_mayor, semaforo_rojo
NUMBER = re.compile(r"\d+(\.\d+)?")


def load(concept: str, year: int, directory: Path | str = RULES) -> Rules:
    """The rules of `concept` for `year`, checked: a bad file raises RulesError naming the key."""
    if concept not in READERS:
        raise RulesError(f"no concept {concept!r}: billing knows {', '.join(READERS)}")
    if isinstance(year, bool) or not isinstance(year, int):
        raise RulesError(f"a year is an integer, not {year!r}")
    path = Path(directory) / f"{concept}-{year}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"no rules for {concept} {year}: {path} does not exist") from None
    try:
        return READERS[concept](yaml.load(text, Loader=_Loader), year)
    except yaml.YAMLError as error:
        raise RulesError(f"{path.name} is not valid YAML: {error}") from None
    except ValueError as error:  # RulesError, or a date YAML cannot build (2027-02-29)
        raise RulesError(f"{path.name}: {error}") from None


def _predial(data: Any, year: int) -> PredialRules:
    top = _fields(data, "the file", ("version", "rate_per_mil", "due", "early_discounts",
                                     "surcharge_percent"), ("clerk_discounts",))
    due = _date(top["due"], "due", year)
    steps = tuple(
        EarlyDiscount(_date(item["until"], f"{where}.until", year),
                      _percent(item["percent"], f"{where}.percent"))
        for where, item in _items(top["early_discounts"], "early_discounts", ("until", "percent")))
    for before, after in zip(steps, steps[1:], strict=False):
        if after.until <= before.until:
            raise RulesError(f"early_discounts: {after.until} comes after {before.until}; "
                             "list the dates in order, each once")
    if steps and steps[-1].until > due:
        raise RulesError(f"early_discounts: {steps[-1].until} is after the due date {due}")
    return PredialRules(year, _version(top["version"]), _rate(top["rate_per_mil"], "rate_per_mil"),
                        due, steps, _percent(top["surcharge_percent"], "surcharge_percent"),
                        _reasons(top.get("clerk_discounts", {})))


def _water(data: Any, year: int) -> WaterRules:
    top = _fields(data, "the file", ("version", "service_fee", "blocks", "due_days",
                                     "surcharge_percent"), ("clerk_discounts",))
    blocks: list[Block] = []
    for where, item in _items(top["blocks"], "blocks", ("from_m3", "price"), ("to_m3",), 1):
        start = _rate(item["from_m3"], f"{where}.from_m3")
        end = None if item.get("to_m3") is None else _rate(item["to_m3"], f"{where}.to_m3")
        expected = blocks[-1].to_m3 if blocks else Decimal(0)
        if expected is None or start != expected:
            raise RulesError(f"{where}.from_m3 is {start}, expected {expected}: blocks start at 0 "
                             "and each starts where the one before ends (no gap, no overlap)")
        if end is not None and end <= start:
            raise RulesError(f"{where}.to_m3 {end} is not above its from_m3 {start}")
        blocks.append(Block(start, end, _amount(item["price"], f"{where}.price")))
    if blocks[-1].to_m3 is not None:
        raise RulesError("blocks: the last block has no to_m3 (it prices every m³ above)")
    return WaterRules(year, _version(top["version"]), _amount(top["service_fee"], "service_fee"),
                      tuple(blocks), _count(top["due_days"], "due_days"),
                      _percent(top["surcharge_percent"], "surcharge_percent"),
                      _reasons(top.get("clerk_discounts", {})))


def _fines(data: Any, year: int) -> FineRules:
    top = _fields(data, "the file", ("version", "uma", "offences", "discount_within_days",
                                     "discount_percent", "due_days", "surcharge_percent"),
                  ("clerk_discounts",))
    offences: dict[str, Offence] = {}
    for code, item in _codes(top["offences"], "offences").items():
        entry = _fields(item, f"offences.{code}", ("description", "umas"))
        if not isinstance(entry["description"], str) or not entry["description"].strip():
            raise RulesError(f"offences.{code}.description is the offence in words")
        offences[code] = Offence(entry["description"].strip(),
                                 _rate(entry["umas"], f"offences.{code}.umas"))
    return FineRules(year, _version(top["version"]), _amount(top["uma"], "uma"),
                     MappingProxyType(offences),
                     _count(top["discount_within_days"], "discount_within_days"),
                     _percent(top["discount_percent"], "discount_percent"),
                     _count(top["due_days"], "due_days"),
                     _percent(top["surcharge_percent"], "surcharge_percent"),
                     _reasons(top.get("clerk_discounts", {})))


READERS: dict[str, Callable[[Any, int], Rules]] = {
    "predial": _predial, "agua": _water, "multas": _fines}


class _Loader(yaml.SafeLoader):
    """YAML read exactly: 1.13 is Decimal("1.13") (never a float), a repeated key is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise RulesError(f"line {key_node.start_mark.line + 1}: {key!r} appears twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _exact_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = loader.construct_scalar(node)
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text  # .inf, .nan: refused by the field that reads it


_Loader.add_constructor("tag:yaml.org,2002:float", _exact_float)


def _fields(data: Any, where: str, required: tuple[str, ...],
            optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RulesError(f"{where} is a mapping of {', '.join(required)}")
    unknown = [key for key in data if key not in required + optional]
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r} "
                         f"(expected: {', '.join(required + optional)})")
    missing = [key for key in required if key not in data]
    if missing:
        raise RulesError(f"{where}: missing key {missing[0]!r}")
    return data


def _items(data: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = (),
           at_least: int = 0) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(data, list) or len(data) < at_least:
        raise RulesError(f"{where} is a list" + (f" of {at_least} or more" if at_least else ""))
    return [(f"{where}[{i}]", _fields(item, f"{where}[{i}]", required, optional))
            for i, item in enumerate(data)]


def _codes(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RulesError(f"{where} is a mapping of codes")
    for code in data:
        if not isinstance(code, str) or not CODE.fullmatch(code):
            raise RulesError(f"{where}: {code!r} is not a code (lower case, digits, _)")
    return data


def _reasons(data: Any) -> Mapping[str, Decimal]:
    return MappingProxyType({code: _percent(value, f"clerk_discounts.{code}")
                             for code, value in _codes(data or {}, "clerk_discounts").items()})


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RulesError(f"version is a whole number from 1, not {value!r}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RulesError(f"{where} is a whole number of days, 0 or more, not {value!r}")
    return value


def _amount(value: Any, where: str) -> Decimal:
    try:
        amount = parse(value)
    except (TypeError, ValueError) as error:
        raise RulesError(f"{where}: {error}") from None
    if amount < 0:
        raise RulesError(f"{where} cannot be negative: {amount}")
    return amount


def _rate(value: Any, where: str) -> Decimal:
    if isinstance(value, str):
        if not NUMBER.fullmatch(value.strip()):
            raise RulesError(f"{where} is a number, e.g. 1.13, not {value!r}")
        value = Decimal(value.strip())
    try:
        number = exact(value, where)
    except (TypeError, ValueError) as error:
        raise RulesError(str(error)) from None
    if number < 0:
        raise RulesError(f"{where} cannot be negative: {number}")
    return number


def _percent(value: Any, where: str) -> Decimal:
    number = _rate(value, where)
    if number > 100:
        raise RulesError(f"{where} is a percentage from 0 to 100, not {number}")
    return number


def _date(value: Any, where: str, year: int) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise RulesError(f"{where} is a date YYYY-MM-DD, not {value!r}") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise RulesError(f"{where} is a date YYYY-MM-DD, not {value!r}")
    if value.year != year:
        raise RulesError(f"{where} {value} is not in {year}")
    return value
