"""Time checks run by the schedule (AWS) or the local timer: only what is due."""
from __future__ import annotations

from chalicelib import outbox
from chalicelib.context import current
from chalicelib.observability import logger


def tick() -> dict[str, int]:
    context = current()
    resent = outbox.deliver_due(context)
    if resent:
        logger.info("time checks", extra={"outbox_retried": resent})
    return {"outbox_retried": resent}
