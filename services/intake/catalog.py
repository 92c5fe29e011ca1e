"""The service catalog: what a citizen can report, who owns it, its SLA and the questions it asks.

A definition is plain data (it is stored as JSON and served as Open311 `services` and service
definitions); `check_answers` turns a citizen's answers into clean values or field errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.fields import Line, Text, finite, one_of, pattern

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
CODE_MESSAGE = "lowercase letters, digits, _ or -, at most 64"
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


class Flag(fields.Boolean):
    """JSON true or false, nothing else (not 0, 1, "yes" or "on": an admin's typo must not pass;
    marshmallow's sets cannot tell 0 from False)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("true or false")
        return value


def flag(default: bool) -> Flag:
    return Flag(load_default=default)


class ValueSchema(Schema):
    key = Line(100, required=True, strip=True, min_length=1)
    name = Line(200, required=True, strip=True, min_length=1)


class QuestionSchema(Schema):
    code = Line(64, required=True, validate=pattern(CODE_PATTERN, CODE_MESSAGE))
    datatype = one_of(DATATYPES, required=True)
    description = Text(MAX_STRING, required=True, strip=True, min_length=1)
    required = flag(False)
    order = fields.Integer(strict=True, validate=validate.Range(0, 1000), load_default=None)
    variable = flag(True)
    datatype_description = Text(MAX_STRING, load_default="")
    values = fields.List(fields.Nested(ValueSchema), validate=validate.Length(max=100),
                         load_default=list)

    @validates_schema
    def lists_have_values(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["datatype"] in ("singlevaluelist", "multivaluelist") and not data["values"]:
            raise ValidationError("list questions need values [{key, name}]", "values")


class DefinitionSchema(Schema):
    """What an admin may send for a catalog service (unknown fields are refused)."""

    code = Line(64, required=True, validate=pattern(CODE_PATTERN, CODE_MESSAGE))
    name = Line(200, required=True, strip=True, min_length=1)
    group = Line(100, required=True, strip=True, min_length=1)
    department = Line(100, required=True, strip=True, min_length=1)
    description = Text(MAX_TEXT, load_default="")
    keywords = fields.List(Line(100), validate=validate.Length(max=50), load_default=list)
    sla_hours = finite(validate=validate.Range(0, 24 * 365, min_inclusive=False),
                       load_default=None, allow_none=True)
    questions = fields.List(fields.Nested(QuestionSchema), validate=validate.Length(max=50),
                            load_default=list)
    active = flag(True)

    @validates_schema
    def unique_question_codes(self, data: dict[str, Any], **kwargs: Any) -> None:
        codes = [question["code"] for question in data["questions"]]
        if len(codes) != len(set(codes)):
            raise ValidationError("each question needs a code of its own", "questions")


DEFINITION = DefinitionSchema()


def check_definition(data: dict[str, Any]) -> ServiceDefinition:
    """A definition an admin sent, checked; CatalogError says what is wrong with it."""
    try:
        loaded = DEFINITION.load(data)
    except ValidationError as error:
        raise CatalogError(_flat(error.messages)) from None
    for index, question in enumerate(loaded["questions"]):
        if question["order"] is None:
            question["order"] = index + 1
    return ServiceDefinition.from_dict(loaded)


def _flat(messages: Any, where: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"questions[0].code": [...]} (how the API names them)."""
    if isinstance(messages, list):
        return {where or "_schema": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = key if not where else (f"{where}[{key}]" if isinstance(key, int)
                                      else f"{where}.{key}")
        flat.update(_flat(value, name))
    return flat
