"""The domain's values and the stored items name their fields once: each value field is the stored
attribute of the same name, and what only one side has is listed here, by name."""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib.domain import values
from chalicelib.store import models

# value -> (stored model, attributes only stored, value fields read from another attribute)
PAIRS = {
    values.Workshop: (models.WorkshopModel, set(), {}),
    values.Student: (models.StudentModel, set(), {}),
    values.Registration: (models.RegistrationModel, {"outbox_lease"}, {}),
    values.Hook: (models.AdminModel, None, {"id": "sk", "created_at": "at"}),
    values.Delivery: (models.AdminModel, None, {"id": "sk", "created_at": "at", "due_at": "delivery_due_at"}),
}


@pytest.mark.parametrize("value", list(PAIRS), ids=lambda v: v.__name__)
def test_a_value_and_its_stored_item_name_each_field_once(value):
    model, stored_only, renamed = PAIRS[value]
    fields = {f.name for f in dataclasses.fields(value)}
    attributes = set(model.get_attributes())
    read_from = {renamed.get(name, name) for name in fields}
    assert read_from - attributes == set(), f"{value.__name__} fields with no stored attribute"
    if stored_only is not None:  # the admin table holds several kinds of item: only the value's are checked
        assert attributes - read_from == stored_only, f"{model.__name__} attributes {value.__name__} does not read"


def test_the_organisers_record_reads_only_what_a_listing_fetches():
    from datetime import UTC, datetime

    from chalicelib.domain.reports import RECORD_FIELDS, registration_record

    names = {f.name for f in dataclasses.fields(values.Registration)}
    assert set(RECORD_FIELDS) - names == set(), "record columns naming no registration field"
    # a registration holding only what a listing fetches gives the same record as the whole item
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    whole = values.Registration(id="r1", email="a@example.org", workshop_id="W", status="finished",
                                created_at=at, finished_at=at, completion=0.5, checks_passed=2, extensions_used=1,
                                survey={"rating": 4}, outbox_error="refused", due_state="active", progress="ready")
    fetched = values.Registration(**{n: getattr(whole, n) for n in RECORD_FIELDS})
    assert registration_record(fetched) == registration_record(whole)
    assert registration_record(whole)["delivery_error"] == "refused"
    assert registration_record(whole)["completion"] == 0.5


def test_what_a_sync_writes_of_a_workshop_folder_is_a_field_of_the_workshop():
    from chalicelib.domain.workshop_spec import WorkshopSpec

    spec = WorkshopSpec(id="WKSHP-A", title="A", description="About A.", category="python", duration=60,
                        seats=2, presenter={"name": "P"})
    written = spec.stored_fields()
    assert set(written) - {f.name for f in dataclasses.fields(values.Workshop)} == set()
    assert set(written) - set(models.WorkshopModel.get_attributes()) == set()
    assert written["replay_url"] is None and written["survey"] is None and written["translations"] is None


def test_a_hook_can_follow_every_event_a_change_owes_and_the_api_docs_name_each():
    from pathlib import Path

    from chalicelib.domain import lifecycle, webhooks
    from chalicelib.domain.outbox import WEBHOOK

    owed = {entry.action for name, value in vars(lifecycle).items() if name.endswith("_OUTBOX")
            for entry in value if entry.kind == WEBHOOK}
    assert set(webhooks.REGISTRATION_EVENTS) == owed
    # the order a hook lists them in (the dashboard's boxes, a hook's stored list): a registration's life
    assert webhooks.REGISTRATION_EVENTS == ("registered", "provisioned", "reminder_sent", "extended", "finished",
                                            "failed", "survey")
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert [event for event in webhooks.EVENTS if f"`{event}`" not in docs] == []
