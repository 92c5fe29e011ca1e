"""The service catalog: what a citizen can report, who owns it, its SLA and the questions it asks.

A definition is plain data (it is stored as JSON and served as Open311 `services` and service
definitions); `check_answers` turns a citizen's answers into clean values or field errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
MAX_STRING = 500
MAX_TEXT = 4000


class CatalogError(ValueError):
    """A definition or an answer does not hold; `errors` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Question:
    """An Open311 attribute: one question the citizen answers when reporting."""

    code: str
    datatype: str
    description: str
    required: bool = False
    order: int = 1
    variable: bool = True
    datatype_description: str = ""
    values: tuple[tuple[str, str], ...] = ()  # (key, name) for the list datatypes

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.values)


@dataclass(frozen=True)
class ServiceDefinition:
    code: str
    name: str
    group: str
    department: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    sla_hours: float | None = None
    questions: tuple[Question, ...] = field(default_factory=tuple)
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keywords"] = list(self.keywords)
        data["questions"] = [{**asdict(q), "values": [{"key": k, "name": n} for k, n in q.values]}
                             for q in self.questions]
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ServiceDefinition:
        questions = tuple(
            Question(**{**q, "values": tuple((v["key"], v["name"]) for v in q.get("values", ()))})
            for q in data.get("questions", ())
        )
        return ServiceDefinition(**{**data, "keywords": tuple(data.get("keywords", ())),
                                    "questions": questions})

    def check_answers(self, answers: dict[str, Any]) -> dict[str, Any]:
        """The answers cleaned (numbers as numbers, lists as lists), or CatalogError naming each
        bad one as `attribute[CODE]`."""
        known = {q.code: q for q in self.questions if q.variable}
        errors: dict[str, list[str]] = {}
        for code in answers:
            if code not in known:
                errors[f"attribute[{code}]"] = [f"{self.code} asks no question {code!r}"]
        clean: dict[str, Any] = {}
        for question in sorted(known.values(), key=lambda q: q.order):
            value = answers.get(question.code)
            if _blank(value):
                if question.required:
                    errors[f"attribute[{question.code}]"] = [
                        f"required: {question.description}"]
                continue
            try:
                clean[question.code] = _clean(question, value)
            except ValueError as error:
                errors[f"attribute[{question.code}]"] = [str(error)]
        if errors:
            raise CatalogError(errors)
        return clean


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == [""]


def _clean(question: Question, value: Any) -> Any:
    kind = question.datatype
    if kind == "multivaluelist":
        items = value if isinstance(value, list) else [value]
        items = [str(item) for item in items if str(item) != ""]
        wrong = [item for item in items if item not in question.keys]
        if wrong:
            raise ValueError(f"not among the choices ({', '.join(question.keys)}): "
                             f"{', '.join(wrong)}")
        return sorted(set(items), key=question.keys.index)
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError("give a single value")
        value = value[0]
    if kind == "singlevaluelist":
        if str(value) not in question.keys:
            raise ValueError(f"one of: {', '.join(question.keys)}")
        return str(value)
    if kind == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("a finite number")
        return int(number) if number.is_integer() else number
    if kind == "datetime":
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
        except ValueError:
            raise ValueError("a date and time like 2026-11-22T18:30:00-06:00") from None
    text = str(value).strip()
    limit = MAX_TEXT if kind == "text" else MAX_STRING
    if len(text) > limit:
        raise ValueError(f"at most {limit} characters")
    return text


def check_definition(data: dict[str, Any]) -> ServiceDefinition:
    """A definition an admin sent, checked; CatalogError says what is wrong with it."""
    import re

    errors: dict[str, list[str]] = {}
    code = str(data.get("code", ""))
    if not re.match(CODE_PATTERN, code):
        errors["code"] = ["lowercase letters, digits, _ or -, at most 64"]
    for key in ("name", "group", "department"):
        if not str(data.get(key, "")).strip():
            errors[key] = ["required"]
    sla = data.get("sla_hours")
    if sla is not None and (not isinstance(sla, int | float) or isinstance(sla, bool)
                            or not 0 < sla <= 24 * 365):
        errors["sla_hours"] = ["hours, more than 0 and at most a year"]
    seen: set[str] = set()
    for index, question in enumerate(data.get("questions") or []):
        where = f"questions[{index}]"
        if not isinstance(question, dict):
            errors[where] = ["an object"]
            continue
        qcode = str(question.get("code", ""))
        if not re.match(CODE_PATTERN, qcode) or qcode in seen:
            errors[f"{where}.code"] = ["a unique code: lowercase letters, digits, _ or -"]
        seen.add(qcode)
        if question.get("datatype") not in DATATYPES:
            errors[f"{where}.datatype"] = [f"one of: {', '.join(DATATYPES)}"]
        if not str(question.get("description", "")).strip():
            errors[f"{where}.description"] = ["the question's text is required"]
        values = question.get("values") or []
        if question.get("datatype") in ("singlevaluelist", "multivaluelist") and not values:
            errors[f"{where}.values"] = ["list questions need values [{key, name}]"]
        if any(not isinstance(v, dict) or not v.get("key") or not v.get("name")
               for v in values):
            errors[f"{where}.values"] = ["each value needs a key and a name"]
    if errors:
        raise CatalogError(errors)
    allowed = {f.name for f in ServiceDefinition.__dataclass_fields__.values()}
    qallowed = set(Question.__dataclass_fields__)
    unknown = sorted(set(data) - allowed) + sorted(
        {k for q in data.get("questions") or [] for k in q} - qallowed)
    if unknown:
        raise CatalogError({"_schema": [f"unknown fields: {', '.join(unknown)}"]})
    try:
        definition = ServiceDefinition.from_dict(
            {**data, "name": str(data["name"]).strip(), "questions": [
                {**q, "order": int(q.get("order", i + 1)), "required": bool(q.get("required"))}
                for i, q in enumerate(data.get("questions") or [])]})
    except (TypeError, ValueError) as error:
        raise CatalogError({"_schema": [str(error)]}) from None
    return definition
