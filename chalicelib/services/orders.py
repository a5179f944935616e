"""Accepting a verified order: at most once per nonce, and its workflow started idempotently
(the execution name comes from registration + action, so a duplicate delivery or a resent order
starts nothing new)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.orders import Order, OrderRejected
from chalicelib.services.context import Context


def accept(ctx: Context, order: Order) -> bool:
    """Start the order's workflow; False when it had started already. A replayed nonce is
    refused; a failure to start forgets the nonce, so the redelivery SNS makes is not taken for
    a replay."""
    # wall time, like the order's freshness: the nonce must outlive every order still fresh
    expires = datetime.now(UTC) + timedelta(seconds=2 * ctx.settings.order_max_age_seconds)
    if not ctx.stores.provisioning.remember_nonce(order.nonce, expires):
        raise OrderRejected("replay", "this order was already received")
    try:
        return ctx.workflows(order)
    except Exception:
        ctx.stores.provisioning.forget_nonce(order.nonce)
        raise
