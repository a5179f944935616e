"""Chalice wiring only: routes come from blueprints, handlers call chalicelib."""
from importlib import import_module

from chalice import Chalice, Rate

from chalicelib.web.admin import admin
from chalicelib.web.api import api
from chalicelib.web.callbacks import callbacks
from chalicelib.web.pages import pages

app = Chalice(app_name="wod")
app.register_blueprint(api)
app.register_blueprint(pages)
app.register_blueprint(callbacks)
app.register_blueprint(admin)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="time-checks")
def time_checks(event):
    """Every minute: reminders, expiries, stuck work, waitlist, mail retries — only what is due."""
    from chalicelib import lifecycle

    return lifecycle.tick()


@app.on_sns_message(topic="wod-orders", name="order-intake")
def order_intake(event):
    """SES inbound order mail, delivered by the receipt rule through SNS."""
    from chalicelib.backend import wiring

    return wiring.handle_order(event.message, event.to_dict())


# One Lambda function per Task state: ``<machine>-<task>`` (see local/workflows.py).
STATE_MACHINE_TASKS = {
    "provision": ("chalicelib.backend.provision",
                  ("prepare", "create_hub_user", "start_server", "check_ready", "deploy", "compensate")),
    "cleanup": ("chalicelib.backend.cleanup", ("measure_completion", "teardown", "report")),
    "purge": ("chalicelib.backend.cleanup", ("teardown", "report")),
    "reset": ("chalicelib.backend.provision", ("deploy",)),
    "warm": ("chalicelib.backend.warm", ("prepare", "start", "check_ready", "mark")),
}


def _task(machine: str, module: str, name: str):
    def handler(event, context):
        return getattr(import_module(module), name)(event)

    handler.__name__ = f"{machine}_{name}"
    return app.lambda_function(name=f"{machine}-{name.replace('_', '-')}")(handler)


TASK_FUNCTIONS = [_task(machine, module, name)
                  for machine, (module, names) in STATE_MACHINE_TASKS.items() for name in names]


@app.middleware("all")
def observe(event, get_response):
    """Logger keys, a trace and the metrics flush around every function."""
    from chalicelib.observability import around

    return around(event, get_response)
