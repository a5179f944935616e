"""Request parsing and the one place where errors become HTTP responses."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable
from urllib.parse import parse_qs

from chalice import Response

from chalicelib.domain.errors import InvalidInput, WodError
from chalicelib.observability import logger

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
INTERNAL = "Something went wrong on our side; please try again."


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body),
        status_code=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store", **SECURITY_HEADERS, **(headers or {})},
    )


def html_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body,
        status_code=status,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": PAGE_CSP,
            "Cache-Control": "no-store",
            **SECURITY_HEADERS,
            **(headers or {}),
        },
    )


def error_body(exc: WodError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, InvalidInput):
        body["fields"] = exc.fields
    return body


def json_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except WodError as exc:
            return json_response(error_body(exc), exc.status)
        except Exception:
            logger.exception("unhandled error")
            return json_response({"error": "internal", "message": INTERNAL}, 500)

    return wrapper


def parse_json(raw: bytes | None) -> Any:
    if not raw:
        raise InvalidInput({"body": "The request body is empty."}, "Send the registration as a JSON object.")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput({"body": f"Not valid JSON: {exc}"}, "The request body is not valid JSON.") from exc


def parse_form(raw: bytes | None) -> dict[str, str]:
    """First value of each field of an urlencoded form."""
    pairs = parse_qs((raw or b"").decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=50)
    return {key: values[0] for key, values in pairs.items()}
