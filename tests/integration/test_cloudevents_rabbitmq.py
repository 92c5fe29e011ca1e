"""What the outbox publishes follows the CloudEvents RabbitMQ binding: a subscriber using the
official SDK reads each message off the real broker as the very event tracking stored."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.outbox import Publisher
from tests.conftest import unique
from tests.support import EventListener, wait_for

pytestmark = pytest.mark.integration

OPERATOR = Actor("op-7", "operator", "phone_070")
SUPERVISOR = Actor("sup-1", "supervisor", "staff")


@pytest.fixture
def listener(amqp_uri, exchange_name):
    listening = EventListener(amqp_uri, exchange_name, unique("test.listener"))
    yield listening
    listening.close()


def test_a_subscriber_with_the_official_sdk_reads_what_tracking_published(
        amqp_uri, exchange_name, listener):
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    try:
        folio = app.open_report(
            service_code="bache", service_name="Bache", department="obras",
            description="Bache frente a la escuela", location={"lat": 20.59, "long": -100.39},
            actor=OPERATOR).folio
        app.assign(folio, SUPERVISOR, crew_id="C-07", step_id="clave-1")
        convert = CloudEventConverter(app)
        published = [convert(n) for n in app.recorder.select_notifications(1, 10)]
    finally:
        app.close()
    publisher = Publisher(amqp_uri, exchange_name)
    try:
        publisher.publish(published)
    finally:
        publisher.close()
    wait_for(lambda: len(listener.messages) == 2, message="both events")

    for sent, message in zip(published, listener.messages, strict=True):
        headers = dict(message.headers)
        read = from_rabbitmq(RabbitMQMessage(headers, message.content_type, message.body),
                             JSONFormat())

        assert (read.get_id(), read.get_type(), read.get_subject()) == (
            sent.id, sent.type, folio)
        assert read.get_data() == sent.data
        assert read.get_time() == sent.time
        assert {key: headers[key] for key in ("ce-id", "ce-type", "ce-subject")} == {
            "ce-id": sent.id, "ce-type": sent.type, "ce-subject": folio}
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-source"] == "/expediente/tracking"
    assert listener.received[1].data["step_id"] == "clave-1"
