"""The CloudEvents 1.0 envelope (structured JSON mode) that every published event travels in, and
its RabbitMQ protocol binding's message headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
REQUIRED = ("specversion", "id", "source", "type")
HEADER_PREFIX = "ce-"  # the RabbitMQ binding's, for the application headers


class InvalidCloudEvent(ValueError):
    pass


@dataclass(frozen=True)
class CloudEvent:
    id: str
    source: str
    type: str
    subject: str | None
    time: datetime
    data: dict[str, Any]
    sequence: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    datacontenttype: str = "application/json"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "datacontenttype": self.datacontenttype,
            "time": self.time.isoformat(),
            "data": self.data,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        if self.sequence is not None:
            body["sequence"] = self.sequence
        body.update(self.extensions)
        return body

    def amqp_headers(self) -> dict[str, str]:
        """The application headers of this event sent in structured mode, as the RabbitMQ
        protocol binding names them (`ce-type`, `ce-subject`…): the body holds the whole event,
        the headers let a broker's header exchange or a reader pick events without parsing it."""
        attributes = {"specversion": SPEC_VERSION, "id": self.id, "source": self.source,
                      "type": self.type, "time": self.time.isoformat()}
        if self.subject is not None:
            attributes["subject"] = self.subject
        return {HEADER_PREFIX + name: value for name, value in attributes.items()}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CloudEvent:
        missing = [name for name in REQUIRED if not body.get(name)]
        if missing:
            raise InvalidCloudEvent(f"missing attributes: {', '.join(missing)}")
        if body["specversion"] != SPEC_VERSION:
            raise InvalidCloudEvent(f"unsupported specversion {body['specversion']!r}")
        known = {"specversion", "id", "source", "type", "subject", "time", "data", "sequence",
                 "datacontenttype"}
        try:
            time = datetime.fromisoformat(body["time"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCloudEvent("time must be an RFC 3339 timestamp") from exc
        return cls(
            id=body["id"],
            source=body["source"],
            type=body["type"],
            subject=body.get("subject"),
            time=time,
            data=body.get("data") or {},
            sequence=body.get("sequence"),
            extensions={k: v for k, v in body.items() if k not in known},
            datacontenttype=body.get("datacontenttype", "application/json"),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise InvalidCloudEvent("body is not JSON") from exc
        if not isinstance(body, dict):
            raise InvalidCloudEvent("body is not a JSON object")
        return cls.from_dict(body)
