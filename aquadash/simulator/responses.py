"""The simulator's answers: a status, headers and a body that may be streamed."""

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

JSON = "application/json; charset=utf-8"


class DropConnection(Exception):
    """Stop answering and close the connection; `serve()` turns this into a bare close.

    Raised before any byte is written it leaves the client with no response at all; raised from
    inside a body it leaves a response shorter than its Content-Length.
    """


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Iterable[bytes] = ()

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def raw_response(
    status: int, content_type: str, data: bytes, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    return Response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers],
        [data],
    )


def json_response(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return raw_response(status, JSON, json.dumps(payload).encode(), headers)


def process_id() -> str:
    return secrets.token_hex(8).upper()


def v1_error(
    status: int, code: int, message: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """Zuora's generic v1 error body: 8-digit code = resource code + 2-digit category."""
    body = {
        "success": False,
        "processId": process_id(),
        "reasons": [{"code": code, "message": message}],
    }
    return json_response(status, body, headers)


def authentication_error() -> Response:
    return v1_error(401, 90000011, "Authentication error")


def not_found(message: str) -> Response:
    return v1_error(404, 50000040, message)


def missing_file() -> Response:
    """The file endpoint's error body is not the v1 one: GET_Files documents
    {"reasons": [{"code": "SystemError", "message": ...}]} for 4XX and 500, a word for a code.
    Which word a purged file gets is not documented; "NotFound" is ours."""
    body = {"reasons": [{"code": "NotFound", "message": "The requested file does not exist."}]}
    return json_response(404, body)
