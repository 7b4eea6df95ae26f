"""Serving a Simulator over HTTP from a background thread (stdlib wsgiref, one thread per
request), with the bare connection close that the `drop` and `truncated` faults need."""

import logging
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from aquadash.simulator.app import Simulator
from aquadash.simulator.responses import DropConnection

logger = logging.getLogger("aquadash.simulator")


@dataclass(frozen=True)
class Running:
    url: str
    host: str
    port: int


@contextmanager
def serve(
    simulator: Simulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Running]:
    """Serve `simulator` until the block ends; port 0 picks a free port. Sets `simulator.url`.
    With `tls` (a server context holding a certificate) it speaks https, as Zuora does."""
    server_class = _Server6 if ":" in host else _Server
    server = server_class((host, port), _RequestHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.set_app(simulator)
    bound_port = server.server_address[1]
    scheme = "https" if tls is not None else "http"
    netloc = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
    url = f"{scheme}://{netloc}"
    simulator.url = url
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield Running(url=url, host=host, port=bound_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a `slow` fault still sleeping must not hold up shutdown
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn), which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _ServerHandler(ServerHandler):
    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], DropConnection):
            return  # write nothing more: the connection closes after this request
        super().handle_error()


class _RequestHandler(WSGIRequestHandler):
    def handle(self) -> None:
        """WSGIRequestHandler.handle with our ServerHandler, so DropConnection closes quietly."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self  # type: ignore[attr-defined]  # wsgiref logs through it
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        logger.info("%s %s", self.address_string(), format % args)
