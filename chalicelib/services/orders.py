"""Accepting a verified order: at most once per nonce, and its workflow started idempotently
(the execution name comes from registration + action, so a duplicate delivery or a resent order
starts nothing new)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.orders import Order, OrderRejected
from chalicelib.observability import logger
from chalicelib.services.context import Context


def accept(ctx: Context, order: Order) -> bool:
    """Start the order's workflow, then keep its nonce; False when it had started already.

    The execution's name (registration and action) is the idempotency key, so the start comes
    first: a function stopped between the two (a timeout, a crash) leaves a started workflow and
    no nonce, and the redelivery SNS makes starts nothing new instead of being taken for a replay
    and dropped. A replayed order, its nonce already kept, is refused; its start was a no-op."""
    started = ctx.workflows(order)
    # wall time, like the order's freshness: the nonce must outlive every order still fresh
    expires = datetime.now(UTC) + timedelta(seconds=2 * ctx.settings.order_max_age_seconds)
    if not ctx.stores.provisioning.remember_nonce(order.nonce, expires):
        if started:  # cannot happen while execution names are the key; kept visible if it does
            logger.warning("an order's nonce was known but its workflow new", extra={"order": order.subject})
            return True
        raise OrderRejected("replay", "this order was already received")
    return started
