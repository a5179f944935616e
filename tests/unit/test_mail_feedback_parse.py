"""SES's bounce and complaint notifications, as the configuration set's SNS destination publishes
them, read into the registration they name and what they mark; anything else is None."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain.mail import REGISTRATION_HEADER
from chalicelib.domain.mail_feedback import Feedback, parse

REGISTRATION = "Xq3v_9kLm-2PzR8tYw4sNb7c"  # as secrets.token_urlsafe(18) makes one


def notification(event_type: str = "Bounce", registration: str | None = REGISTRATION, **extra) -> dict:
    """An SES event publishing record, shaped as SES's documented examples."""
    headers = [{"name": "From", "value": "Workshops-on-Demand <noreply@example.org>"},
               {"name": "To", "value": "ada@example.com"},
               {"name": "Subject", "value": "Welcome to Workshops-on-Demand"},
               {"name": "MIME-Version", "value": "1.0"},
               {"name": "Content-Type", "value": "multipart/alternative; boundary=\"===============1==\""}]
    if registration is not None:
        headers.insert(3, {"name": REGISTRATION_HEADER, "value": registration})
    record = {
        "eventType": event_type,
        "mail": {
            "timestamp": "2026-11-26T10:00:02.012Z", "source": "noreply@example.org",
            "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
            "sendingAccountId": "123456789012",
            "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "destination": ["ada@example.com"], "headersTruncated": False, "headers": headers,
            "commonHeaders": {"from": ["Workshops-on-Demand <noreply@example.org>"], "to": ["ada@example.com"],
                              "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
                              "subject": "Welcome to Workshops-on-Demand"},
            "tags": {"ses:configuration-set": ["wod-mail"], "ses:source-ip": ["192.0.2.0"],
                     "ses:from-domain": ["example.org"], "ses:caller-identity": ["wod-APIHandler"]},
        },
    }
    if event_type == "Bounce":
        record["bounce"] = {"bounceType": "Permanent", "bounceSubType": "General",
                            "bouncedRecipients": [{"emailAddress": "ada@example.com", "action": "failed",
                                                   "status": "5.1.1",
                                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                            "timestamp": "2026-11-26T10:00:03.669Z",
                            "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
                            "reportingMTA": "dsn; mta.example.com"}
    if event_type == "Complaint":
        record["complaint"] = {"complainedRecipients": [{"emailAddress": "ada@example.com"}],
                               "timestamp": "2026-11-26T10:05:00.000Z",
                               "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000001",
                               "userAgent": "Mozilla/5.0", "complaintFeedbackType": "abuse",
                               "arrivalDate": "2026-11-26T10:04:58.000Z"}
    for key, value in extra.items():
        record[key] = value
    return record


def test_a_permanent_bounce_names_its_registration():
    assert parse(json.dumps(notification())) == Feedback("bounce", "Permanent", REGISTRATION)
    assert parse(json.dumps(notification()).encode()).mark == "permanent"


def test_a_transient_bounce_is_marked_transient():
    record = notification()
    record["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
    feedback = parse(json.dumps(record))
    assert feedback == Feedback("bounce", "Transient", REGISTRATION) and feedback.mark == "transient"
    record["bounce"]["bounceType"] = "Undetermined"
    assert parse(json.dumps(record)).mark == "transient"


def test_a_complaint_is_marked_complaint():
    feedback = parse(json.dumps(notification("Complaint")))
    assert feedback == Feedback("complaint", None, REGISTRATION) and feedback.mark == "complaint"


def test_an_identity_notification_and_a_header_in_other_case_are_read_too():
    record = notification()
    record["notificationType"] = record.pop("eventType")
    record["mail"]["headers"][3]["name"] = REGISTRATION_HEADER.lower()
    assert parse(json.dumps(record)).registration == REGISTRATION


def test_a_registration_tag_names_it_when_the_header_is_gone():
    record = notification(registration=None)
    record["mail"]["headersTruncated"] = True
    assert parse(json.dumps(record)) == Feedback("bounce", "Permanent", None)
    record["mail"]["tags"]["registration"] = [REGISTRATION]
    assert parse(json.dumps(record)).registration == REGISTRATION


@pytest.mark.parametrize("value", ["", "../admin", "reg 1", "x" * 81, "ab;c", "\u00e9t\u00e9"])
def test_a_registration_that_is_not_id_shaped_is_none(value):
    assert parse(json.dumps(notification(registration=value))) == Feedback("bounce", "Permanent", None)


@pytest.mark.parametrize("message", [
    "", "not json", "{", "[]", "null", '"Bounce"', json.dumps({"eventType": "Bounce"}),
    json.dumps(notification("Delivery")), json.dumps(notification("Send")),
    json.dumps(notification(bounce="nope")), json.dumps(notification(mail=["x"])),
    json.dumps(notification(bounce={"bounceSubType": "General"})), b"\xff\xfe",
])
def test_anything_else_is_none(message):
    assert parse(message) is None


def test_headers_of_other_shapes_name_nothing():
    record = notification()
    record["mail"]["headers"] = [REGISTRATION, {"name": REGISTRATION_HEADER, "value": 7}]
    assert parse(json.dumps(record)).registration is None
    record["mail"]["headers"] = {"X-WOD-Registration": REGISTRATION}
    record["mail"]["tags"] = {"registration": "not a list"}
    assert parse(json.dumps(record)).registration is None
