"""Intake's contact handoff against the real RabbitMQ: the subscription request waits in
notifications' durable queue, declared with the system's queue type (quorum on a cluster), so that
notifications can declare the same queue the same way."""

from __future__ import annotations

import json
import subprocess

import kombu
import pytest

from services.intake.dependencies import ContactHandoff
from shared.contracts import contacts
from tests.stack import create_vhost, delete_vhost

pytestmark = pytest.mark.integration


@pytest.fixture
def vhost_uri():
    vhost = create_vhost()
    yield vhost, f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    delete_vhost(vhost)


def queue_types(vhost: str) -> dict[str, str]:
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers",
                             "name", "type"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("\t")[:2] for line in listed.strip().splitlines())


def test_on_a_cluster_the_subscription_queue_is_a_quorum_queue_holding_the_contact(vhost_uri):
    vhost, uri = vhost_uri
    handoff = ContactHandoff(uri, "quorum")
    ContactHandoff(uri, "quorum")  # another replica declares it again: the same queue

    handoff.subscribe({"folio": "QRO-2026-000123", "access_token": "t" * 24, "channel": "app",
                       "contact": {"email": "ana@example.com", "notify_by": ["email"]},
                       "requested_at": "2026-12-01T10:00:00-06:00"})

    assert queue_types(vhost)[contacts.QUEUE] == "quorum"
    with kombu.Connection(uri) as conn:
        message = kombu.Queue(contacts.QUEUE, durable=True, queue_arguments={
            "x-queue-type": "quorum"})(conn.default_channel).get(no_ack=True)
    assert json.loads(message.body)["contact"]["email"] == "ana@example.com"


def test_by_default_it_is_a_classic_durable_queue(vhost_uri):
    vhost, uri = vhost_uri
    ContactHandoff(uri)
    assert queue_types(vhost)[contacts.QUEUE] == "classic"
