"""SES's bounces and complaints reach the registration their mail named (``mail-feedback``) and the
event report counts them; a notification about nobody, or that is not SES's, changes nothing."""
from __future__ import annotations

import json

from chalicelib.domain.mail import REGISTRATION_HEADER
from chalicelib.services import event_report, mail_feedback
from tests.admintools import activate, participant
from tests.conftest import ses_sent
from tests.unit.test_mail_feedback_parse import notification

WORKSHOP = "WKSHP-BOUNCE"


def bounce(registration: str | None, kind: str = "Permanent") -> str:
    record = notification(registration=registration)
    record["bounce"]["bounceType"] = kind
    return json.dumps(record)


def deliver(client, message: str) -> str:
    """What SNS hands the function: one record carrying SES's notification."""
    return client.lambda_.invoke("mail-feedback", client.events.generate_sns_event(message=message)).payload


def test_every_participant_email_names_its_registration(client, platform, sync):
    sync((WORKSHOP, {"seats": 2}))
    created = participant(platform, WORKSHOP, "ada@example.com", "Ada")
    activate(client, platform, created)
    mails = [m for m in ses_sent() if m["To"] == "ada@example.com"]
    assert [m["Subject"].split(":")[0] for m in mails] == ["You're registered", "Your workshop is ready"]
    assert all(m[REGISTRATION_HEADER] == created["id"] for m in mails)
    assert not any(m[REGISTRATION_HEADER] for m in ses_sent() if m["To"] != "ada@example.com")  # orders: none


def test_a_bounce_marks_the_registration_and_the_report_counts_it(client, platform, sync, recording, clock):
    sync((WORKSHOP, {"seats": 3}))
    ada, bo, cy = (participant(platform, WORKSHOP, f"{n}@example.com", n.capitalize()) for n in ("ada", "bo", "cy"))
    clock.advance(minutes=1)
    assert deliver(client, bounce(ada["id"])) == "marked"
    assert deliver(client, bounce(bo["id"], "Transient")) == "marked"
    assert deliver(client, json.dumps(notification("Complaint", registration=cy["id"]))) == "marked"
    assert deliver(client, bounce(ada["id"], "Transient")) == "unchanged"  # never marked down

    marked = platform.stores.registrations.get(ada["id"])
    assert marked.mail_bounce == "permanent" and marked.mail_bounced_at == clock.now
    assert marked.status == "pending" and marked.outbox == ()  # its life goes on; the bounce owes nothing
    assert platform.stores.registrations.get(bo["id"]).mail_bounce == "transient"
    record = platform.stores.organiser.registration(cy["id"])
    assert record["mail_bounce"] == "complaint" and record["mail_bounced_at"] == clock.now.isoformat()

    report = event_report.report(platform, WORKSHOP)
    assert report["mail"] == {"bounced": 2, "complaints": 1, "undelivered": 0}
    assert sum(1 for m in recording.sent if m.to == "ada@example.com") == 1  # nobody was mailed about it


def test_a_bounce_about_nobody_or_not_from_ses_changes_nothing(client, platform, sync, tables):
    sync((WORKSHOP, {"seats": 2}))
    created = participant(platform, WORKSHOP, "ada@example.com", "Ada")
    before = tables.customers.get(created["id"]).attribute_values
    for message in (bounce("Nobody_registered_this00"), bounce(None), bounce("../" + created["id"]),
                    "{not json", json.dumps(notification("Delivery", registration=created["id"]))):
        assert deliver(client, message) in ("unknown", "unnamed", "ignored")
    assert mail_feedback.handle(platform, b"\x00\xff") == "ignored"
    assert tables.customers.get(created["id"]).attribute_values == before
    assert tables.customers.count() == 1  # no item made for an unknown id
    assert event_report.report(platform, WORKSHOP)["mail"] == {"bounced": 0, "complaints": 0, "undelivered": 0}
