"""Chalice wiring only: routes come from blueprints, handlers call chalicelib."""
from chalice import Chalice, Rate

from chalicelib.backend.tasks import function_name, run, tasks
from chalicelib.web.api import api
from chalicelib.web.callbacks import callbacks
from chalicelib.web.dashboard import dashboard
from chalicelib.web.openbadges import openbadges
from chalicelib.web.organiser_api import organiser_api
from chalicelib.web.pages import pages

app = Chalice(app_name="wod")
for blueprint in (api, pages, callbacks, organiser_api, dashboard, openbadges):
    app.register_blueprint(blueprint)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="time-checks")
def time_checks(event):
    """Every minute: reminders, expiries, stuck work, waitlist, mail retries — only what is due."""
    from chalicelib.services.bootstrap import for_process
    from chalicelib.services.time_checks import tick

    return tick(for_process())


@app.on_sns_message(topic="wod-orders", name="order-intake")
def order_intake(event):
    """SES inbound order mail, delivered by the receipt rule through SNS."""
    from chalicelib.backend import intake

    return intake.handle_order(event.message, event.to_dict())


@app.on_sns_message(topic="wod-mail-feedback", name="mail-feedback")
def mail_feedback(event):
    """SES's bounces and complaints, published by the configuration set to its SNS topic."""
    from chalicelib.services import mail_feedback as feedback
    from chalicelib.services.bootstrap import for_process

    return feedback.handle(for_process(), event.message)


@app.lambda_function(name="outbox-dispatcher")
def outbox_dispatcher(event, context):
    """The registrations' stream (DynamoDB Streams): deliver what each written change owes."""
    from chalicelib.services.bootstrap import for_process
    from chalicelib.services.outbox import dispatch

    return {"delivered": dispatch(for_process(), event.get("Records") or [])}


def _task(machine: str, name: str, module: str):
    """One Lambda function per Task state (``chalicelib/backend/tasks.py``)."""
    def handler(event, context):
        return run(module, name, event)

    handler.__name__ = f"{machine}_{name}"
    return app.lambda_function(name=function_name(machine, name))(handler)


# Lambda finds a handler as an attribute of this module: the template's Handler is app.<machine>_<task>.
TASKS = {f"{machine}_{name}": _task(machine, name, module) for machine, name, module in tasks()}
TASK_FUNCTIONS = list(TASKS.values())
globals().update(TASKS)


@app.middleware("http")
def same_site(request, get_response):
    """Host, Origin and content type checked before any route (chalicelib/web/guard.py)."""
    from chalicelib.web.guard import screen

    return screen(request, get_response)


@app.middleware("all")
def observe(event, get_response):
    """Logger keys, a trace and the metrics flush around every function."""
    from chalicelib.observability import around

    return around(event, get_response)
