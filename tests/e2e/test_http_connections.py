"""HTTP connections the services hold: an idle keep-alive connection is closed after the
configured time, so clients that never close theirs cannot grow a service without bound."""

from __future__ import annotations

import socket
import time

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_keepalive(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("keepalive"),
                    {"HTTP_KEEPALIVE_SECONDS": "1"}).start()
    yield running
    running.stop()


def test_an_idle_keep_alive_connection_is_closed_by_the_service(short_keepalive):
    for service in (short_keepalive.intake, short_keepalive.tracking):
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            for _ in range(2):  # kept alive while it is in use
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert b"200 OK" in sock.recv(65536)
            time.sleep(2.5)
            assert sock.recv(65536) == b""  # the service hung up
