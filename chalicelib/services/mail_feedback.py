"""SES's bounces and complaints (the configuration set's SNS topic, ``app.py``'s ``mail-feedback``):
each marks the registration its mail named (``bounced`` in :mod:`chalicelib.domain.lifecycle`), which
the event report counts. A notification that names no registration, an unknown one, or is not
SES's is logged and dropped: SNS would only deliver it again."""
from __future__ import annotations

from chalicelib.domain import mail_feedback
from chalicelib.domain.errors import NotFound
from chalicelib.domain.lifecycle import BOUNCED
from chalicelib.observability import count, logger
from chalicelib.services.commit import commit
from chalicelib.services.context import Context


def handle(ctx: Context, message: str | bytes) -> str:
    """Record one notification (SNS's ``Message``); what became of it: ``marked``, ``unchanged``
    (already marked as much), ``unknown`` (no such registration), ``unnamed`` or ``ignored``."""
    feedback = mail_feedback.parse(message)
    if feedback is None:
        logger.warning("a mail feedback notification that is not an SES bounce or complaint was dropped",
                       extra={"size": len(message or "")})
        return "ignored"
    count({"complaint": "MailComplaints", "permanent": "MailBounces"}.get(feedback.mark, "MailTransientBounces"))
    if feedback.registration is None:
        logger.info("an SES bounce or complaint named no registration", extra={"kind": feedback.mark})
        return "unnamed"
    try:
        reg = ctx.stores.registrations.get(feedback.registration)
    except NotFound:
        logger.info("an SES bounce or complaint named an unknown registration",
                    extra={"registration": feedback.registration, "kind": feedback.mark})
        return "unknown"
    if commit(ctx, reg, BOUNCED, bounce=feedback.mark) is None:
        return "unchanged"
    logger.info("a registration's mail bounced", extra={"registration": reg.id, "kind": feedback.mark})
    return "marked"
