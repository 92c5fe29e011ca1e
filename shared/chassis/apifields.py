"""How marshmallow schemas read in an OpenAPI document (openapi.py): their components' names, the
edge's field types (shared/contracts/fields.py) with their lengths, patterns and formats, and a
service's own field types, which say their shape in a class attribute `openapi_schema`."""

from __future__ import annotations

import inspect
from typing import Any, cast

from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from apispec.ext.marshmallow.common import resolve_schema_cls, resolve_schema_instance
from marshmallow import Schema, validate

from shared.contracts import fields as edge

# Text the edge refuses (fields.py): C0 controls but tab/newline/CR, DEL, C1, U+FFFE/U+FFFF; a
# single line refuses tab, line breaks and U+2028/U+2029 too.
TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff]*$"
LINE = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\ufffe\\uffff]*$"


def teach(plugin: MarshmallowPlugin) -> None:
    """Teach an APISpec's marshmallow plugin (after the spec is made) how our fields read."""
    plugin.converter.add_attribute_function(edge_field)  # type: ignore[union-attr]
    plugin.converter.add_parameter_attribute_function(by_name)  # type: ignore[union-attr]


class SchemaNames:
    """A component's name: its class's, without `Schema`; a class of the same name from another
    module is prefixed with its module's. A schema narrowed for one door (only, exclude, partial)
    is written inline."""

    def __init__(self) -> None:
        self.taken: dict[str, type] = {}

    def __call__(self, schema: Any) -> str | None:
        instance = resolve_schema_instance(schema)
        if instance.only or set(instance.exclude) - set(instance.opts.exclude) or \
                instance.partial:
            return None
        # One class: apispec's type allows a list for a name it resolves to several.
        cls = cast("type[Schema]", resolve_schema_cls(schema))
        name = resolver(cls)
        if self.taken.setdefault(name, cls) is not cls:
            name = cls.__module__.rpartition(".")[2].title() + name
            self.taken.setdefault(name, cls)
        return name


# ---- the edge's field types --------------------------------------------------------------------


def edge_field(self: Any, field: Any, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """apispec's attribute function for the edge's fields and a service's own field types."""
    own = getattr(field, "openapi_schema", None)
    if own is not None:
        ret.pop("default", None)
        return {**own, **({"type": [own["type"], "null"]} if field.allow_none and "type" in own
                          else {})}
    found: dict[str, Any] = {}
    if "pattern" in ret:
        found["pattern"] = ecma(ret["pattern"])
    for validator in field.validators:
        if isinstance(validator, validate.Email):
            found["format"] = "email"
        if isinstance(validator, validate.Range) and not validator.min_inclusive:
            found["exclusiveMinimum"] = ret.pop("minimum", validator.min)
        if isinstance(validator, validate.Range) and not validator.max_inclusive:
            found["exclusiveMaximum"] = ret.pop("maximum", validator.max)
    if isinstance(field, edge.Text):
        found["maxLength"] = min(field.max_length, ret.get("maxLength", field.max_length))
        if field.min_length:
            found["minLength"] = max(field.min_length, ret.get("minLength", 0))
        if "pattern" not in ret and "enum" not in ret:
            found["pattern"] = LINE if field.single_line else TEXT
    elif isinstance(field, edge.MediaUrl):
        found.update(format="uri", maxLength=field.max_length)
    elif isinstance(field, edge.AttributeMap):
        found.update(answer_map(field))
    return found


def by_name(self: Any, field: Any, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A door reads a query argument by its name (`page_size=…`), never an object spread into
    arguments of their own."""
    return {"explode": False} if ret["in"] == "query" else {}


def answer_map(field: edge.AttributeMap) -> dict[str, Any]:
    scalar = {"type": ["string", "number", "boolean", "null"], "maxLength": field.value_length,
              "pattern": TEXT}
    return {"type": "object", "maxProperties": field.max_keys,
            "propertyNames": {"minLength": 1, "maxLength": field.key_length, "pattern": LINE},
            "additionalProperties": {"anyOf": [scalar, {"type": "array", "items": scalar,
                                                        "maxItems": field.max_items}]}}


def ecma(pattern: str) -> str:
    """A Python pattern as JSON Schema reads it: `\\Z` is `$` there, `\\d` only ASCII digits."""
    return pattern.replace("\\Z", "$").replace("\\d", "[0-9]")


def names_in(schema: Any) -> set[str]:
    """The names a Schema (class or instance) reads: its fields' data keys."""
    if schema is None:
        return set()
    instance: Any = schema() if inspect.isclass(schema) else schema
    return {f.data_key or name for name, f in instance.fields.items()}
