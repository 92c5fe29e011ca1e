"""The envelope as the RabbitMQ protocol binding of CloudEvents has it: the official SDK reads our
messages, whole from the body (structured mode) and its attributes from the `ce-` headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_binary, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from shared.contracts.cloudevents import CONTENT_TYPE, CloudEvent

ARRIVED = CloudEvent(
    id="0d9f6a52-6f7e-5d0a-9a43-1f0c2b3d4e5f", source="/expediente/tracking",
    type="mx.expediente.report.crew_arrived", subject="QRO-2026-000123",
    time=datetime(2026, 12, 1, 15, 30, 12, 250000, tzinfo=UTC),
    data={"folio": "QRO-2026-000123", "version": 6, "step_id": "paso-3"}, sequence="41",
    extensions={"streamversion": 6})


def test_the_headers_name_the_events_attributes_with_the_bindings_prefix():
    assert ARRIVED.amqp_headers() == {
        "ce-specversion": "1.0",
        "ce-id": "0d9f6a52-6f7e-5d0a-9a43-1f0c2b3d4e5f",
        "ce-source": "/expediente/tracking",
        "ce-type": "mx.expediente.report.crew_arrived",
        "ce-subject": "QRO-2026-000123",
        "ce-time": "2026-12-01T15:30:12.250000+00:00",
    }


def test_an_event_without_a_subject_has_no_subject_header():
    event = CloudEvent(id="1", source="/expediente/tracking", type="t", subject=None,
                       time=ARRIVED.time, data={})

    assert "ce-subject" not in event.amqp_headers()


def test_the_official_sdk_reads_our_message_in_structured_mode():
    message = RabbitMQMessage(ARRIVED.amqp_headers(), CONTENT_TYPE, ARRIVED.to_json())

    read = from_rabbitmq(message, JSONFormat())

    assert (read.get_id(), read.get_type(), read.get_subject(), read.get_source()) == (
        ARRIVED.id, ARRIVED.type, ARRIVED.subject, ARRIVED.source)
    assert read.get_time() == ARRIVED.time
    assert read.get_data() == ARRIVED.data
    assert read.get_extension("streamversion") == 6


def test_the_official_sdk_reads_the_same_attributes_from_the_headers_alone():
    # As a binary-mode reader would: attributes from the headers, data from the body.
    message = RabbitMQMessage(ARRIVED.amqp_headers(), "application/json",
                              json.dumps(ARRIVED.data).encode())

    read = from_binary(message, JSONFormat())

    assert (read.get_id(), read.get_type(), read.get_subject(), read.get_time()) == (
        ARRIVED.id, ARRIVED.type, ARRIVED.subject, ARRIVED.time)
