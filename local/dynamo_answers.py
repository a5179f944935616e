"""The embedded DynamoDB's answers written as JSON directly, not walked through moto's serializer.

moto (5.2.5) writes every answer by walking the operation's output shape from botocore's model
(``moto.core.serialize``): a generic walker that looks each member up, in several spellings,
on the result. For DynamoDB and DynamoDB Streams, whose results moto already builds in the
wire's own form (attribute values as ``{"S": ...}``), that walk costs more than the operation:
about a third of the embedded AWS's CPU while people register, and a stream read of a few
records holds the DynamoDB turn for milliseconds. ``install()`` answers the item operations and
``GetRecords`` with ``json.dumps`` of the same result: the members the output shape names,
``None`` left out, binary in base64, timestamps as epoch seconds (the JSON protocol's), as
the walk does (one difference: a binary key of a stream record, which moto encodes twice, is
encoded once, as DynamoDB does; no table here has one). Anything else, errors included, takes
moto's walk; a moto other than the one checked (``dynamo_index.SUPPORTED_MOTO``) keeps its own.
``tests/integration/test_dynamo_answers.py`` holds the two answers equal for every operation
named here.
"""
from __future__ import annotations

import base64
import calendar
import functools
import json
from collections import Counter
from datetime import datetime
from typing import Any

DIRECT = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                    "BatchWriteItem", "TransactGetItems", "TransactWriteItems", "GetRecords"})
CONTENT_TYPE = "application/x-amz-json-1.0"
_installed: dict[type, Any] = {}
answered: Counter = Counter()  # operation -> answers written directly


def _wire(value: Any) -> Any:
    """What JSON cannot hold, as the JSON protocol writes it: binary in base64, timestamps in
    epoch seconds."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):  # as moto's serializer: whole seconds, or milliseconds when there are any
        base = calendar.timegm(value.utctimetuple())
        return base + (value.microsecond // 1000) / 1000.0 if value.microsecond else base
    raise TypeError(f"{type(value).__name__} is not JSON")


def _plain(value: Any) -> Any:
    """``value`` without the ``None`` members of its mappings (the walk leaves them out)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def answer(result: Any, members: frozenset[str]) -> str | None:
    """The JSON body for an operation's result (``members``: its output shape's), or None when it
    should take moto's walk."""
    if not isinstance(result, dict):
        return None
    try:
        return json.dumps({k: _plain(v) for k, v in result.items() if k in members and v is not None},
                          default=_wire, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


@functools.cache
def _members(service: str, operation: str) -> frozenset[str]:
    from moto.core.responses import get_service_model

    shape = get_service_model(service).operation_model(operation).output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def install() -> bool:
    """Make the DynamoDB and DynamoDB Streams handlers answer :data:`DIRECT` operations directly.
    False (moto's serializer answers) on a moto this was not checked against."""
    import moto
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    from local.dynamo_index import SUPPORTED_MOTO

    if moto.__version__ not in SUPPORTED_MOTO:
        return False
    plain_results = (ActionResult, DynamoResult)
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        if handler in _installed:
            continue
        walked = _installed[handler] = handler.serialized

        def serialized(self: Any, action_result: Any, walked: Any = walked) -> Any:
            action = self._get_action()
            if type(action_result) in plain_results and action in DIRECT:
                body = answer(action_result.result, _members(self.boto3_service_name, action))
                if body is not None:
                    answered[action] += 1
                    headers = {"Content-Type": CONTENT_TYPE}
                    headers.update(self.response_headers)
                    return 200, headers, body
            return walked(self, action_result)

        handler.serialized = serialized  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    for handler, walked in list(_installed.items()):
        setattr(handler, "serialized", walked)  # noqa: B010
        del _installed[handler]
