"""Build the intake from settings (state machine ARNs, Step Functions client) once per process."""
from __future__ import annotations

from functools import lru_cache

from chalicelib.adapters.aws import client_for
from chalicelib.adapters.workflows import StepFunctionsStarter
from chalicelib.backend.intake import Intake, handle
from chalicelib.settings import get_settings
from chalicelib.store import models


@lru_cache(maxsize=1)
def intake() -> Intake:
    settings = get_settings()
    models.bind(settings)
    starter = StepFunctionsStarter(lambda: client_for("stepfunctions", settings), settings.state_machines)
    return Intake(settings=settings, start=starter)


def handle_order(message: str, raw_event: dict) -> str:
    message_id = ((raw_event.get("Records") or [{}])[0].get("Sns") or {}).get("MessageId", "")
    return handle(intake(), message, message_id)
