"""A service's workers without a broker: nameko's worker_factory with the service's own providers
built from its config.yaml, each call's context (an HTTP request, an RPC caller's token), and the
answer the real entrypoint would give (the HTTP layer's, or the RPC reply the caller reads)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import eventlet
from kombu.utils.json import dumps
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR, DependencyProvider
from nameko.testing.services import worker_factory
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import answer_error
from shared.chassis.errortable import BASE
from shared.chassis.http import HttpEntrypoint
from shared.chassis.rpc import FastRpc, error_of
from shared.chassis.rpcclient import reply_of


@dataclass
class Call:
    """A worker's context as providers read it: the entrypoint's arguments (an HTTP request
    first) and the context data (`authorization`: an RPC caller's bearer token)."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


class Host:
    """What a DependencyProvider sees of its container: the config and the service's name; the
    threads it spawns are green threads, ended by `stop()`. `worker()` builds a worker with the
    providers' dependencies for one call, and `given` (fakes of other services) instead of some."""

    def __init__(self, service_cls: type, config: dict[str, Any]) -> None:
        self.service_cls = service_cls
        self.service_name = service_cls.name  # type: ignore[attr-defined]
        self.config = config
        self.providers: dict[str, DependencyProvider] = {}
        self.given: dict[str, Any] = {}
        self.threads: list[Any] = []

    def provide(self, **providers: DependencyProvider) -> Host:
        """Set each provider up as its container would (setup(); start() comes with start())."""
        for name, provider in providers.items():
            provider.container = self
            provider.attr_name = name
            provider.setup()
            self.providers[name] = provider
        return self

    @property
    def dependencies(self) -> list[DependencyProvider]:
        """As a container's: its providers."""
        return list(self.providers.values())

    def spawn_managed_thread(self, run: Any, identifier: str | None = None) -> Any:
        thread = eventlet.spawn(run)
        self.threads.append(thread)
        return thread

    def start(self) -> Host:
        for provider in self.providers.values():
            provider.start()
        return self

    def stop(self) -> None:
        for provider in reversed(self.providers.values()):
            provider.stop()
        for thread in self.threads:
            thread.wait()

    def worker(self, call: Call) -> Any:
        """A service instance for one call: its providers' dependencies and what is `given`;
        any other dependency is a MagicMock (worker_factory)."""
        provided = {name: provider.get_dependency(call)
                    for name, provider in self.providers.items() if name not in self.given}
        return worker_factory(self.service_cls, **provided, **self.given)


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def rpc_reply(host: Host, method: str, *args: Any, token: str | None = None) -> Any:
    """Call an @rpc method as a caller with `token` would: its result as the wire carries it
    (JSON), or the WireError the caller's RemoteService raises from the reply, with the code
    the method's own error table gives (nameko's RemoteError for an error nobody expected)."""
    entrypoint = _entrypoint(host.service_cls, method, FastRpc)
    call = Call(args=args, data=bearer(token))
    try:
        result = getattr(host.worker(call), method)(*args)
        body = {"result": result, "error": None}
    except Exception:
        body = {"result": None, "error": error_of(sys.exc_info(), entrypoint.errors)}
    return reply_of(json.loads(dumps(body)))


def http_answer(host: Host, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, **request: Any) -> Response:
    """The answer to `method path` as the chassis' HTTP layer gives it: the route matched among
    the service's http entrypoints, the door's method called on a worker, and what its own error
    wrapper did not answer answered by the chassis (a coded error, else a bare 500).
    `request` goes to werkzeug's EnvironBuilder (json=, data=, query_string=...)."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    builder = EnvironBuilder(method=method, path=path, headers=headers, **request)
    try:
        incoming = Request(builder.get_environ())
    finally:
        builder.close()
    adapter = _routes(host.service_cls).bind_to_environ(incoming.environ)
    (name, entrypoint), values = adapter.match()
    try:
        worker = host.worker(Call(args=(incoming,), kwargs=values))
        return entrypoint.response_from_result(getattr(worker, name)(incoming, **values))
    except Exception as exc:
        return answer_error(exc, BASE, incoming, entrypoint.html)


def _routes(service_cls: type) -> Map:
    """The URL map nameko's web server builds from the service's http entrypoints."""
    rules = []
    for name, entrypoint in _entrypoints(service_cls, HttpEntrypoint):
        rule = entrypoint.get_url_rule()
        rule.endpoint = (name, entrypoint)
        rules.append(rule)
    return Map(rules)


def _entrypoint(service_cls: type, method: str, kind: type) -> Any:
    return next(e for name, e in _entrypoints(service_cls, kind) if name == method)


def _entrypoints(service_cls: type, kind: type) -> Iterator[tuple[str, Any]]:
    for name in dir(service_cls):
        for entrypoint in getattr(getattr(service_cls, name), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, kind):
                yield name, entrypoint
