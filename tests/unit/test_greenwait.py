"""greenwait.ready_now: what a socket is ready for right now, without waiting. A broken socket
counts as ready for whatever the wait asked, so libpq meets the error instead of the wait going
round for ever."""

from __future__ import annotations

import socket

import eventlet.patcher
import pytest
from psycopg.waiting import READY_R, READY_W, WAIT_R, WAIT_RW, WAIT_W

from shared.chassis import greenwait

kernel = eventlet.patcher.original("select")


@pytest.fixture
def pair():
    assert greenwait._patched()  # the root conftest patched eventlet in
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_quiet_healthy_socket_is_ready_to_write_not_to_read(pair):
    ours, _theirs = pair
    poller = kernel.poll()
    assert greenwait.ready_now(poller, ours.fileno(), WAIT_W) == READY_W
    assert greenwait.ready_now(poller, ours.fileno(), WAIT_R) == 0
    assert greenwait.ready_now(poller, ours.fileno(), WAIT_RW) == READY_W


def test_an_answer_waiting_makes_it_readable(pair):
    ours, theirs = pair
    theirs.sendall(b"answer")
    poller = kernel.poll()
    assert greenwait.ready_now(poller, ours.fileno(), WAIT_R) == READY_R
    assert greenwait.ready_now(poller, ours.fileno(), WAIT_RW) == READY_R | READY_W


@pytest.mark.parametrize("wait", [WAIT_R, WAIT_W, WAIT_RW])
def test_a_socket_whose_peer_is_gone_is_ready_for_what_was_asked(pair, wait):
    ours, theirs = pair
    theirs.close()
    answer = greenwait.ready_now(kernel.poll(), ours.fileno(), wait)
    assert answer == (READY_R if wait & WAIT_R else 0) | (READY_W if wait & WAIT_W else 0)
