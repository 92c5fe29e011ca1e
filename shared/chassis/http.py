"""nameko's `http` entrypoint with TCP_NODELAY on every connection and idle keep-alive closed.

eventlet's WSGI server writes a response's headers and body in two sends. With Nagle's algorithm
on, the body waits for the client to acknowledge the headers, and a keep-alive client delays that
acknowledgement by up to 40 ms: every response on a reused connection took 40 ms longer.

Left alone, eventlet also keeps an idle keep-alive connection (and its green thread and buffers)
forever: clients that never close theirs would grow the process without bound. Idle connections
close after HTTP_KEEPALIVE_SECONDS; a client that stalls mid-request after HTTP_SOCKET_TIMEOUT."""

from __future__ import annotations

import socket
from typing import Any

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer


class NoDelayWebServer(WebServer):
    def get_wsgi_server(self, sock: Any, wsgi_app: Any, *args: Any, **kwargs: Any) -> Any:
        server = super().get_wsgi_server(sock, wsgi_app, *args, **kwargs)
        config = self.container.config
        server.keepalive = float(config.get("HTTP_KEEPALIVE_SECONDS") or 75)
        server.socket_timeout = float(config.get("HTTP_SOCKET_TIMEOUT") or 60)
        return server

    def process_request(self, sock: Any, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(sock, address)


class NoDelayHttpRequestHandler(HttpRequestHandler):
    server = NoDelayWebServer()


http = NoDelayHttpRequestHandler.decorator
