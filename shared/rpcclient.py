"""Call another service by nameko RPC from inside an entrypoint, with a timeout and a bearer token.

A call goes out either as this service (a `system` token: SERVICE_TOKEN from configuration, or
one minted with the local key in development) or on behalf of the caller, with the caller's own
bearer token so that the other service records the real actor (a 070 operator, say)."""

from __future__ import annotations

import threading
import time
from typing import Any

import eventlet
from nameko.extensions import Extension
from nameko.rpc import ReplyListener, ServiceProxy

from shared.auth import mint_token, setting

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


class RemoteService:
    """What an entrypoint gets: `self.tracking.call("open_report", payload)`."""

    def __init__(self, worker_ctx: Any, proxy: ServiceProxy, credentials: ServiceCredentials,
                 timeout: float) -> None:
        self.worker_ctx = worker_ctx
        self.proxy = proxy
        self.credentials = credentials
        self.timeout = timeout

    def call(self, method: str, *args: Any, on_behalf_of: str | None = None,
             **kwargs: Any) -> Any:
        """Call `method`; `on_behalf_of` is the caller's `Authorization` header to forward."""
        data = self.worker_ctx.data
        before = data.get("authorization")
        data["authorization"] = on_behalf_of or self.credentials.authorization()
        try:
            with eventlet.Timeout(self.timeout, RpcTimeout(
                    f"{self.proxy.service_name}.{method} did not answer in {self.timeout:g} s")):
                return getattr(self.proxy, method)(*args, **kwargs)
        finally:
            if before is None:
                data.pop("authorization", None)
            else:
                data["authorization"] = before


class RpcClient(Extension):
    """Declare `tracking = RpcClient("tracking")` on a service's DependencyProvider and hand
    `self.tracking.get_dependency(worker_ctx)` to the application it builds."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, target_service: str, timeout: float = 10.0) -> None:
        self.target_service = target_service
        self.timeout = timeout

    def setup(self) -> None:
        self.credentials = ServiceCredentials(self.container.config, self.container.service_name)
        self.timeout = float(self.container.config.get("RPC_TIMEOUT", self.timeout))

    def get_dependency(self, worker_ctx: Any) -> RemoteService:
        proxy = ServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener)
        return RemoteService(worker_ctx, proxy, self.credentials, self.timeout)
