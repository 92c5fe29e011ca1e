"""Call another service by nameko RPC from inside an entrypoint, with a timeout and a bearer token.

A call goes out either as this service (a `system` token: SERVICE_TOKEN from configuration, or
one minted with the local key in development) or on behalf of the caller, with the caller's own
bearer token so that the other service records the real actor (a 070 operator, say).

Requests go without publisher confirms, like the replies (shared/chassis/rpc.py): a lost request
ends in RpcTimeout, which the caller handles anyway; a confirm would add a broker round trip per
call. Replies are taken without acknowledgements and handed to the waiting caller in the
consumer's own loop (ReplyListener): an ack per call, and a green thread per reply, bought
nothing, since a reply nobody waits for any more is dropped either way.

An error the other service answered with a wire code (shared/chassis/rpc.py) is raised here as
the contracts' WireError with that code; one without (a bug over there) stays nameko's
RemoteError, which the HTTP layer answers as `unavailable`."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from functools import partial
from typing import Any

import eventlet
from kombu.utils.json import dumps
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.exceptions import deserialize
from nameko.extensions import DependencyProvider, Extension
from nameko.messaging import HeaderEncoder, QueueConsumer
from nameko.rpc import ReplyListener as NamekoReplyListener
from nameko.rpc import get_rpc_exchange

from shared.chassis.amqpfast import fast_channel
from shared.chassis.auth import mint_token, setting
from shared.contracts.errors import WireError, carries_code

log = logging.getLogger(__name__)
TOKEN_TTL = 24 * 3600


class RpcTimeout(Exception):
    """The other service did not answer in time (it may be down or overloaded)."""


class ServiceCredentials:
    """This service's own bearer token, minted again before it expires."""

    def __init__(self, config: dict[str, Any], service_name: str) -> None:
        self.config = config
        self.subject = f"service:{service_name}"
        self._token = setting(config, "SERVICE_TOKEN") or None
        self._minted = 0.0
        self._minting = self._token is None
        self._lock = threading.Lock()

    def authorization(self) -> str:
        if self._minting and time.time() - self._minted > TOKEN_TTL / 2:
            with self._lock:
                if time.time() - self._minted > TOKEN_TTL / 2:
                    self._token = mint_token(self.subject, ["system"], ttl_seconds=TOKEN_TTL,
                                             config=self.config)
                    self._minted = time.time()
        return f"Bearer {self._token}"


class ReplyQueueConsumer(QueueConsumer):
    """The reply queue's consumer, a connection of its own: replies arrive without
    acknowledgement (`no_ack`), and each is handed over in the consumer's loop, not in a green
    thread of its own (handing over is setting an Event)."""

    def handle_message(self, provider: Any, body: Any, message: Any) -> None:
        provider.handle_message(body, message)

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Any:
        for provider in self._providers:
            self._consumers[provider] = consumer_cls(
                queues=[provider.queue], callbacks=[partial(self.handle_message, provider)],
                accept=self.accept, no_ack=True)
        return self._consumers.values()


class ReplyListener(NamekoReplyListener):
    """nameko's reply listener (its queue, its correlation ids) on ReplyQueueConsumer."""

    queue_consumer = ReplyQueueConsumer()

    def handle_message(self, body: Any, message: Any) -> None:
        waiting = self._reply_events.pop(message.properties.get("correlation_id"), None)
        if waiting is not None:  # else the caller gave up (timed out): nothing to do
            waiting.send(body)


class RemoteService(HeaderEncoder):
    """What an entrypoint gets: `self.tracking.call("open_report", payload)`."""

    def __init__(self, worker_ctx: Any, service_name: str, client: RpcClient) -> None:
        self.worker_ctx = worker_ctx
        self.service_name = service_name
        self.listener = client.rpc_reply_listener
        self.credentials = client.credentials
        self.timeout = client.timeout
        self.exchange = client.exchange
        self.channel = client.channel

    def call(self, method: str, *args: Any, on_behalf_of: str | None = None,
             **kwargs: Any) -> Any:
        """Call `method`; `on_behalf_of` is the caller's `Authorization` header to forward."""
        data = self.worker_ctx.data
        before = data.get("authorization")
        data["authorization"] = on_behalf_of or self.credentials.authorization()
        try:
            with eventlet.Timeout(self.timeout, RpcTimeout(
                    f"{self.service_name}.{method} did not answer in {self.timeout:g} s")):
                return self._call(method, args, kwargs)
        except WireError as refused:
            if on_behalf_of is None and refused.code == "unauthenticated":
                # Our own credentials were refused: a misconfiguration of ours, not the caller's
                # fault; they are told to come back, the operator is told why.
                log.error("%s refused this service's own token on %s: %s", self.service_name,
                          method, refused.message)
                raise WireError("unavailable", f"{self.service_name} is not available") from None
            raise
        finally:
            if before is None:
                data.pop("authorization", None)
            else:
                data["authorization"] = before


    def _call(self, method: str, args: tuple, kwargs: dict) -> Any:
        """nameko's wire protocol (as MethodProxy speaks it), published on the shared channel."""
        correlation_id = uuid.uuid4().hex
        reply_event = self.listener.get_reply_event(correlation_id)
        try:
            self.channel.publish_json(
                dumps({"args": args, "kwargs": kwargs}), exchange=self.exchange,
                routing_key=f"{self.service_name}.{method}",
                reply_to=self.listener.routing_key, correlation_id=correlation_id,
                # A request nobody took within the timeout is dropped by the broker: the caller
                # was already told it failed and may retry, so running it late would duplicate.
                expiration=str(int(self.timeout * 1000)),
                application_headers=self.get_message_headers(self.worker_ctx))
            return reply_of(reply_event.wait())
        finally:
            self.listener._reply_events.pop(correlation_id, None)  # after a timeout


def reply_of(body: dict[str, Any]) -> Any:
    """The result of a reply, or the error it carries raised: by code when it has one."""
    error = body.get("error")
    if error:
        if carries_code(error):
            raise WireError.from_dict(error)
        raise deserialize(error)
    return body["result"]


class RpcClient(Extension):
    """Declare `tracking = RpcClient("tracking")` on a service's DependencyProvider and hand
    `self.tracking.get_dependency(worker_ctx)` to the application it builds (or use Remote)."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, target_service: str, timeout: float = 10.0) -> None:
        self.target_service = target_service
        self.timeout = timeout

    def setup(self) -> None:
        config = self.container.config
        self.credentials = ServiceCredentials(config, self.container.service_name)
        self.timeout = float(config.get("RPC_TIMEOUT", self.timeout))
        self.exchange = get_rpc_exchange(config).name
        self.channel = fast_channel(config[AMQP_URI_CONFIG_KEY])

    def get_dependency(self, worker_ctx: Any) -> RemoteService:
        return RemoteService(worker_ctx, self.target_service, self)


class Remote(DependencyProvider):
    """Another service, straight on a service class: `tracking = Remote("tracking")`, then
    `self.tracking.call("report_events", folio, 3)` in any worker."""

    def __init__(self, target_service: str, timeout: float = 10.0) -> None:
        self.client = RpcClient(target_service, timeout)

    def get_dependency(self, worker_ctx: Any) -> RemoteService:
        return self.client.get_dependency(worker_ctx)
