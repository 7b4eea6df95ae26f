"""Faults on demand: the ways Zuora, or what stands in front of it, can fail a request."""

import base64
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aquadash.simulator.files import _zipped, gzipped
from aquadash.simulator.responses import (
    JSON,
    DropConnection,
    Response,
    authentication_error,
    json_response,
    process_id,
    raw_response,
    v1_error,
)

# Faults that change how a normal answer is delivered rather than replacing it.
WRAPPING = frozenset({"slow", "truncated", "drop", "drip"})
KINDS = WRAPPING | {
    "rate_limited",
    "server_error",
    "bad_gateway",
    "unavailable",
    "gateway_timeout",
    "html",
    "invalid_json",
    "wrong_shape",
    "oversize",
    "unauthorized",
    "success_false",
    "redirect",
    "file_body",
    "wide_row",
}

# The example value from Zuora's rate-limit guide.
RATE_LIMIT = "2250000, 50000;w=60, 2250000;w=3600, 27000000;w=86400"
GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
TIMEOUT_PAGE = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)
LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Zuora | Login</title></head><body>"
    b'<form method="post" action="/apps/newlogin.do"><input name="username">'
    b'<input name="password" type="password"><button>Log in</button></form></body></html>'
)


@dataclass
class Fault:
    kind: str
    job_id: str | None = None  # matches paths that contain it
    path: str | None = None  # matches paths that start with it
    times: int | None = 1  # None: forever
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; choose from {sorted(KINDS)}.")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for ever.")

    def matches(self, path: str) -> bool:
        if self.job_id is not None and self.job_id not in path:
            return False
        return self.path is None or path.startswith(self.path)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "job_id": self.job_id, "path": self.path, "times": self.times}


def replacement(fault: Fault, job_id: str | None) -> Response:
    """The answer a replacing fault gives instead of Zuora's."""
    params = fault.params
    match fault.kind:
        case "rate_limited":
            seconds = str(params.get("seconds", 1))
            headers = [
                ("ratelimit-limit", RATE_LIMIT),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", seconds),
            ]
            if params.get("retry_after", True):
                headers.append(("Retry-After", seconds))
            message = "The request rate limit has been exceeded. Try again later."
            return v1_error(429, 50000070, message, headers)
        case "server_error":
            return v1_error(500, 50000060, "An internal error occurred. Please try again later.")
        case "bad_gateway":
            return raw_response(502, "text/html", GATEWAY_PAGE)
        case "unavailable":
            return v1_error(503, 50000061, "The service is temporarily unavailable.")
        case "gateway_timeout":
            return raw_response(504, "text/html", TIMEOUT_PAGE)
        case "html":
            return raw_response(200, "text/html; charset=utf-8", LOGIN_PAGE)
        case "invalid_json":
            return raw_response(200, JSON, b'{"id": "' + (job_id or "").encode() + b'", "status": ')
        case "wrong_shape":
            return json_response(200, {"id": job_id, "status": 123, "batches": "x", "name": None})
        case "oversize":
            size = int(params.get("bytes", 20 * 1024 * 1024))
            return _oversize(size, bool(params.get("gzip")), job_id)
        case "unauthorized":
            return authentication_error()
        case "success_false":
            reason = {"code": params.get("code", 90000011), "message": "Authentication error"}
            body = {"success": False, "processId": process_id(), "reasons": [reason]}
            return json_response(200, body)
        case "file_body":
            body = params.get("body", b"")
            data = body.encode() if isinstance(body, str) else bytes(body)
            return raw_response(200, str(params.get("content_type", "text/csv")), data)
        case "wide_row":
            width, cell = int(params.get("width", 64 * 1024 * 1024)), int(params.get("cell", 100))
            file_format = str(params.get("format", "CSV")).upper()
            return _wide_row(width, cell, int(params.get("row", 2)), file_format)
        case "redirect":
            location = str(params.get("location", "http://169.254.169.254/latest/meta-data/"))
            return raw_response(302, "text/html", b"", [("Location", location)])
    raise ValueError(f"{fault.kind} does not replace the answer")


def truncated(response: Response, params: dict[str, Any]) -> Response:
    """Declare more bytes than are sent, send `send` bytes (default: half), then hang up."""
    length = next((int(v) for k, v in response.headers if k.lower() == "content-length"), None)
    send = int(params.get("send", (length or 2000) // 2))
    declared = max(int(params.get("declared", length or 2 * send)), send + 1)
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(declared)))
    return Response(response.status, headers, _cut(response.body, send))


def dripped(response: Response, params: dict[str, Any]) -> Response:
    """The normal answer one byte at a time, `interval` seconds (real time) apart: each read
    gets a byte well inside any read timeout, so only an overall deadline ends it."""
    interval = float(params.get("interval", 0.05))
    return Response(response.status, response.headers, _drip(response.body, interval))


def _drip(body: Any, interval: float) -> Iterator[bytes]:
    for chunk in body:
        for byte in chunk:
            time.sleep(interval)
            yield bytes([byte])


def _cut(body: Any, send: int) -> Iterator[bytes]:
    try:
        for chunk in body:
            if len(chunk) >= send:
                yield chunk[:send]
                break
            send -= len(chunk)
            yield chunk
    finally:
        if hasattr(body, "close"):
            body.close()
    raise DropConnection


def _oversize(size: int, compress: bool, job_id: str | None) -> Response:
    """A valid job-like JSON object of `size` bytes (when it can be that small), made as sent."""
    head = json.dumps({"id": job_id, "status": "completed", "padding": ""})[:-2].encode()
    tail = b'"}'
    size = max(size, len(head) + len(tail))
    padding = size - len(head) - len(tail)

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, padding, 65536):
            yield b"x" * min(65536, padding - start)
        yield tail

    if not compress:
        return Response(200, [("Content-Type", JSON), ("Content-Length", str(size))], body())
    return Response(200, [("Content-Type", JSON), ("Content-Encoding", "gzip")], gzipped(body()))


def _wide_row(width: int, cell: int, row: int, file_format: str) -> Response:
    """A result file whose row `row` (1: the header) is `width` characters of `cell`-character
    cells, as CSV, GZIP or ZIP, made as it is sent. The cells are random base64, which packs
    to about three quarters of its size, so a compressed file is long on the wire too and a
    client that stops reading early is seen to stop."""
    before = b"" if row == 1 else b"Id,Notes\n" + b"".join(b"%d,ok\n" % n for n in range(row - 2))
    after = b"\nlast,row\n"
    piece = cell * max(1, 65536 // cell)

    def csv() -> Iterator[bytes]:
        yield before
        randomness = random.Random(width)
        for start in range(0, width, piece):
            size = min(piece, width - start)
            text = bytearray(base64.b64encode(randomness.randbytes(size))[:size])
            text[cell - 1 :: cell] = b"," * len(range(cell - 1, size, cell))
            yield bytes(text)
        yield after

    if file_format == "GZIP":
        return Response(200, [("Content-Type", "application/gzip")], gzipped(csv()))
    if file_format == "ZIP":
        return Response(
            200, [("Content-Type", "application/zip")], _zipped(csv(), "wide.csv", None)
        )
    length = len(before) + width + len(after)
    return Response(200, [("Content-Type", "text/csv"), ("Content-Length", str(length))], csv())
