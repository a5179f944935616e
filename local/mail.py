"""The mail process (``python -m local mail``): SES in local mode.

The SMTP server takes every email the platform sends and stores it in the on-disk mailbox,
which the web inbox shows (``local/mailbox.py``); an email to an orders address this stack
serves is SES inbound instead: it becomes an SES notification over SNS, is kept in the order
spool (``.wod/orders/``) and goes to the order intake (``chalicelib.backend.intake``, the body
of ``app.py``'s ``order-intake``) in the background with this process's Context
(``local/orders.py``). The mailbox is on disk: the supervisor restarts this
process if it stops, and a sender whose delivery failed meanwhile retries (the outbox).
"""
from __future__ import annotations

import logging

log = logging.getLogger("wod.local.mail")


def main() -> int:
    from chalicelib.backend import intake
    from chalicelib.settings import get_settings
    from local import part
    from local.mailbox import InboxServer, Mailbox, SmtpServer
    from local.orders import OrderRouter, OrderSpool

    config = part.setup("mail")
    stopping = part.Stopping()
    context = part.install_context(config)

    def deliver(event: dict, lambda_context: object) -> str:
        """What SNS hands ``order-intake``: one record carrying the SES notification."""
        sns = event["Records"][0]["Sns"]
        return intake.handle(context, sns["Message"], sns.get("MessageId", ""))

    mailbox = Mailbox(config.state_dir)
    served = get_settings().orders_addresses if config.backend else ()
    spool = OrderSpool(config.state_dir / "orders", deliver)
    left = spool.start()
    smtp = SmtpServer(OrderRouter(mailbox.add, deliver, served, spool), config.host, config.smtp_port)
    inbox = InboxServer(mailbox, config.host, config.inbox_port)
    smtp.start()
    inbox.start()
    part.ready(messages=len(mailbox.list()), orders=sorted(served), spooled=left)
    code = 0
    try:
        while not stopping.wait(1):
            for name, alive in (("SMTP server", smtp.alive), ("inbox", inbox.alive)):
                if not alive:
                    log.error("the %s stopped", name)
                    code = 1
            if code:
                break
    finally:
        smtp.stop()
        inbox.stop()
        spool.stop()
    return code
