"""End-to-end fixtures: a whole running system per test module."""

from __future__ import annotations

import pytest

from tests.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Tracking and intake running on their own SQLite files and RabbitMQ virtual host."""
    running = Stack(tmp_path_factory.mktemp("stack")).start()
    yield running
    running.stop()
