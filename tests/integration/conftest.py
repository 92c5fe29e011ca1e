"""Fixtures of the integration tier."""

from __future__ import annotations

import pytest

from tests.integration.bus import Bus


@pytest.fixture
def bus(amqp_uri, exchange_name):
    running = Bus(amqp_uri, exchange_name)
    yield running
    running.close()
