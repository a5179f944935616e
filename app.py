"""Chalice wiring only: routes come from blueprints, handlers call chalicelib."""
from chalice import Chalice, Rate

from chalicelib.web.api import api
from chalicelib.web.pages import pages

app = Chalice(app_name="wod")
app.register_blueprint(api)
app.register_blueprint(pages)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="time-checks")
def time_checks(event):
    """Every minute: the due-only time checks (mail outbox retries for now)."""
    from chalicelib import lifecycle

    return lifecycle.tick()
