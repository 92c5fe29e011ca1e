"""The chassis' RPC client on the real broker: replies come back without acknowledgements on a
consumer of their own, each to the call that asked. A reply that arrives after its caller gave
up is dropped, and the next calls still get their own answers; many calls at once from one
process never get each other's."""

from __future__ import annotations

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from shared.chassis.rpc import rpc
from shared.chassis.rpcclient import Remote, RpcTimeout

pytestmark = pytest.mark.integration


class Echo:
    name = "echo"

    @rpc
    def echo(self, tag: str, seconds: float = 0.0) -> str:
        eventlet.sleep(seconds)
        return tag


class Caller:
    name = "caller"

    echo = Remote("echo", timeout=0.5)

    @rpc
    def ask(self, tag: str, seconds: float = 0.0) -> str:
        answer: str = self.echo.call("echo", tag, seconds)
        return answer

    @rpc
    def ask_many(self, tags: list[str]) -> list[str]:
        """Many calls at once from one worker, each waiting for its own reply."""
        pool = eventlet.GreenPool(30)
        return list(pool.imap(lambda tag: self.echo.call("echo", tag, 0.01), tags))


@pytest.fixture
def services(private_amqp_uri):
    config = {"AMQP_URI": private_amqp_uri, "SERVICE_TOKEN": "test-token", "max_workers": 40}
    containers = [ServiceContainer(cls, config) for cls in (Echo, Caller)]
    for container in containers:
        container.start()
    yield containers[1]
    for container in containers:
        container.stop()


def test_each_call_gets_its_own_answer(services):
    tags = [f"t{n}" for n in range(200)]
    with entrypoint_hook(services, "ask_many") as ask_many:
        assert ask_many(tags) == tags


def test_a_late_reply_is_dropped_and_later_calls_get_their_own(services):
    with entrypoint_hook(services, "ask") as ask:
        with pytest.raises(RpcTimeout):
            ask("late", 1.0)  # the caller gives up at 0.5 s; the answer comes at 1 s
        eventlet.sleep(0.8)  # ... and lands with nobody waiting
        assert ask("on time") == "on time"
        assert [ask(f"next-{n}") for n in range(5)] == [f"next-{n}" for n in range(5)]
