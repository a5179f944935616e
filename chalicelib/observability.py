"""Logs, metrics and traces for every function (Powertools), in one place.

- ``logger``: structured JSON logs; each invocation's log lines carry the function and,
  when the event names them, the registration, student and workshop.
- ``count``/``seconds``/``gauge``: CloudWatch metrics (embedded metric format) in the
  ``WorkshopsOnDemand`` namespace, flushed at the end of each invocation.
- ``tracer()``: X-Ray traces (AWS SDK calls as subsegments) when running in Lambda with
  tracing on; built on the first invocation, so the X-Ray SDK never slows the import.

``around`` is the Chalice middleware ``app.py`` installs on every function.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "wod-platform"  # not "wod": that name is Chalice's own app logger
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "WorkshopsOnDemand")
KEYS = ("registration", "student", "workshop")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
_tracer: list = []


def tracing() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and \
        os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")


def tracer():
    if not _tracer:
        from aws_lambda_powertools import Tracer

        _tracer.append(Tracer(service=SERVICE))
    return _tracer[0]


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=round(value, 3))


def gauge(name: str, value: float, **dimensions: str) -> None:
    """A value with its own dimensions (``SeatsFree`` per workshop), emitted at once."""
    if is_metrics_disabled():  # single_metric does not check it itself
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim)


def keys_of(payload: Any) -> dict[str, str]:
    """The registration/student/workshop an event is about (a task's order, a route's id)."""
    found: dict[str, str] = {}
    if not isinstance(payload, dict):
        return found
    order = payload.get("order")
    if not isinstance(order, dict):
        order = payload
    for key in KEYS:
        value = order.get(key)
        if isinstance(value, str) and 0 < len(value) <= 100:
            found[key] = value
    params = payload.get("uri_params")
    if isinstance(params, dict) and isinstance(params.get("registration_id"), str):
        found["registration"] = params["registration_id"][:100]
    return found


def _describe(event: Any) -> tuple[str, dict[str, str]]:
    """(function label, keys) for a Chalice middleware event of any kind."""
    context = getattr(event, "context", None)
    function = getattr(context, "function_name", None) or type(event).__name__
    if hasattr(event, "method") and hasattr(event, "path"):  # an HTTP request
        return function, {"route": f"{event.method} {event.path}"[:200], **keys_of(event.to_dict())}
    return function, keys_of(getattr(event, "event", None))


def around(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Every invocation: keys on its log lines, a traced handler, metrics flushed at the end."""
    function, keys = _describe(event)
    logger.append_keys(function=function, **keys)
    try:
        with tracer().provider.in_subsegment(f"## {function}") if tracing() else nullcontext() as subsegment:
            if subsegment:
                for key, value in keys.items():
                    subsegment.put_annotation(key=key, value=value)
            return get_response(event)
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()
        logger.remove_keys(["function", "route", *KEYS])
