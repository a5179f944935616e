"""The mail rate: its budget per window, its settings, and what the SES adapter reads and sends."""
from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.mail import MailThrottled, SesMailer, SesQuota
from chalicelib.domain import mail_feedback
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import REGISTRATION_HEADER, Email
from chalicelib.domain.pacing import budget
from chalicelib.services.pacing import LOCAL_SEND_RATE, pacer_for
from chalicelib.settings import Settings, SettingsError, load_settings

EMAIL = Email(to="a@example.com", subject="s", text="t")


@pytest.mark.parametrize("rate, window, urgent, bulk", [
    (14, 1, 14, 9),  # SES's default: participant mail leaves 5 a second to orders and credentials
    (50, 1, 50, 35),
    (1, 3, 3, 2),  # the sandbox: counted over 3 seconds, so both kinds keep some
    (2, 2, 4, 2),
    (0.5, 6, 3, 2),
])
def test_the_budget_keeps_a_part_of_each_window_for_urgent_mail(rate, window, urgent, bulk):
    plan = budget(rate, 0.7)
    assert (plan.window, plan.urgent, plan.bulk) == (window, urgent, bulk)
    assert plan.limit(True) == urgent and plan.limit(False) == bulk
    assert plan.start(1_800_000_004.5) % window == 0 and plan.next_start(1_800_000_004.5) > 1_800_000_004.5


def test_a_full_share_lets_participant_mail_use_everything():
    assert budget(14, 1.0).bulk == 14


def test_send_rate_settings_are_read_and_checked():
    assert load_settings({}).mail_send_rate is None
    settings = load_settings({"WOD_MAIL_SEND_RATE": "14", "WOD_MAIL_BULK_SHARE": "0.5",
                              "WOD_MAIL_MAX_WAIT_SECONDS": "2", "WOD_SES_CONFIGURATION_SET": "wod-mail"})
    assert (settings.mail_send_rate, settings.mail_bulk_share, settings.mail_max_wait_seconds,
            settings.ses_configuration_set) == (14.0, 0.5, 2.0, "wod-mail")
    assert load_settings({"WOD_SES_CONFIGURATION_SET": ""}).ses_configuration_set is None


@pytest.mark.parametrize("name, value", [
    ("WOD_MAIL_SEND_RATE", "fast"), ("WOD_MAIL_SEND_RATE", "0"), ("WOD_MAIL_SEND_RATE", "-3"),
    ("WOD_MAIL_SEND_RATE", "nan"), ("WOD_MAIL_BULK_SHARE", "0"), ("WOD_MAIL_BULK_SHARE", "1.5"),
    ("WOD_MAIL_MAX_WAIT_SECONDS", "600"),
])
def test_a_send_rate_setting_that_cannot_work_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_the_rate_comes_from_the_setting_else_the_transport():
    assert pacer_for(Settings(mail_send_rate=7)).rate() == 7
    assert pacer_for(Settings(mail_transport="smtp")).rate() == LOCAL_SEND_RATE
    assert pacer_for(Settings(mail_transport="ses", mail_send_rate=3)).rate() == 3


class FakeSes:
    def __init__(self, error: dict | None = None, rate: float = 14.0):
        self.error, self.rate, self.requests, self.quota_reads = error, rate, [], 0

    def send_raw_email(self, **request):
        if self.error:
            raise ClientError({"Error": self.error}, "SendRawEmail")
        self.requests.append(request)

    def get_send_quota(self):
        self.quota_reads += 1
        if self.error:
            raise ClientError({"Error": self.error}, "GetSendQuota")
        return {"Max24HourSend": 50000.0, "MaxSendRate": self.rate, "SentLast24Hours": 3.0}


def test_the_configuration_set_is_named_only_when_set():
    ses = FakeSes()
    SesMailer(lambda: ses, "WoD <noreply@wod.local>", "wod-mail").send(EMAIL)
    SesMailer(lambda: ses, "WoD <noreply@wod.local>").send(EMAIL)
    assert ses.requests[0]["ConfigurationSetName"] == "wod-mail"
    assert "ConfigurationSetName" not in ses.requests[1]
    assert ses.requests[0]["Source"] == "noreply@wod.local" and ses.requests[0]["Destinations"] == ["a@example.com"]


def test_a_participants_mail_is_tagged_with_its_registration():
    ses = FakeSes()
    mailer = SesMailer(lambda: ses, "noreply@wod.local", "wod-mail")
    mailer.send(dataclasses.replace(EMAIL, headers={REGISTRATION_HEADER: "r-1_A"}))
    mailer.send(EMAIL)
    assert ses.requests[0]["Tags"] == [{"Name": "registration", "Value": "r-1_A"}]
    assert "Tags" not in ses.requests[1]
    assert mail_feedback.REGISTRATION_TAG == "registration"  # what a notification's tags are read by


@pytest.mark.parametrize("error, daily", [
    ({"Code": "Throttling", "Message": "Maximum sending rate exceeded."}, False),
    ({"Code": "MaxSendingRateExceeded", "Message": "slow down"}, False),
    ({"Code": "TooManyRequestsException", "Message": "slow down"}, False),
    ({"Code": "Throttling", "Message": "Daily message quota exceeded."}, True),
])
def test_ses_throttles_are_told_apart_from_failures(error, daily):
    with pytest.raises(MailThrottled) as raised:
        SesMailer(lambda: FakeSes(error), "noreply@wod.local").send(EMAIL)
    assert raised.value.daily is daily


def test_other_ses_refusals_are_plain_unavailability():
    with pytest.raises(Unavailable) as raised:
        SesMailer(lambda: FakeSes({"Code": "MessageRejected", "Message": "Email address is not verified."}),
                  "noreply@wod.local").send(EMAIL)
    assert not isinstance(raised.value, MailThrottled)


def test_the_ses_rate_is_read_once_per_cache_period():
    ses, now = FakeSes(rate=14.0), [0.0]
    quota = SesQuota(lambda: ses, ttl=300, clock=lambda: now[0])
    assert quota.rate() == 14.0 and quota.rate() == 14.0
    ses.rate, now[0] = 40.0, 299.0
    assert quota.rate() == 14.0 and ses.quota_reads == 1
    now[0] = 300.0
    assert quota.rate() == 40.0 and ses.quota_reads == 2


def test_an_unreadable_ses_rate_paces_at_the_sandbox_rate_until_the_next_read():
    ses, now = FakeSes({"Code": "AccessDenied", "Message": "not allowed"}), [0.0]
    quota = SesQuota(lambda: ses, ttl=300, clock=lambda: now[0])
    assert quota.rate() == 1.0
    ses.error, now[0] = None, 301.0
    assert quota.rate() == 14.0


def test_a_second_spent_for_participant_mail_still_gives_urgent_mail_its_part():
    """The pacer remembers a second found spent, per kind of mail: participant mail asks the store
    no more in it, while orders and credentials still take what is kept for them."""
    from types import SimpleNamespace

    from chalicelib.services.pacing import Pacer, constant

    asked: list[int] = []
    pacer = Pacer(constant(10), 0.5, 0, now=lambda: 1_800_000_000.5, sleep=lambda seconds: None)
    plan = pacer.budget()
    counts = iter([0, plan.bulk + 1])

    def spend(scope, window, limit):
        asked.append(limit)
        return next(counts)

    context = SimpleNamespace(stores=SimpleNamespace(limits=SimpleNamespace(spend=spend)))
    assert not pacer.take(context, plan, urgent=False)  # participant mail's share is spent
    assert pacer.spent(plan, urgent=False) and not pacer.spent(plan, urgent=True)
    assert not pacer.take(context, plan, urgent=False) and len(asked) == 1  # known spent: not asked again
    assert pacer.take(context, plan, urgent=True)  # what is kept for orders and credentials is still given
    assert asked == [plan.bulk, plan.urgent]
