"""Chalice wiring only: routes come from blueprints, handlers call chalicelib."""
from chalice import Chalice, Rate

from chalicelib.web.api import api
from chalicelib.web.callbacks import callbacks
from chalicelib.web.pages import pages

app = Chalice(app_name="wod")
app.register_blueprint(api)
app.register_blueprint(pages)
app.register_blueprint(callbacks)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="time-checks")
def time_checks(event):
    """Every minute: the due-only time checks (mail outbox retries for now)."""
    from chalicelib import lifecycle

    return lifecycle.tick()


@app.on_sns_message(topic="wod-orders", name="order-intake")
def order_intake(event):
    """SES inbound order mail, delivered by the receipt rule through SNS."""
    from chalicelib.backend import wiring

    return wiring.handle_order(event.message, event.to_dict())


def _task(name):
    """A provisioning task as its own Lambda function (DESIGN §5)."""

    def handler(event, context):
        from chalicelib.backend import provision

        return getattr(provision, name)(event)

    handler.__name__ = f"provision_{name}"
    return app.lambda_function(name=f"provision-{name.replace('_', '-')}")(handler)


PROVISION_TASKS = {name: _task(name) for name in
                   ("prepare", "create_hub_user", "start_server", "check_ready", "deploy", "compensate")}
