"""The dispatcher (``WOD_OUTBOX_DISPATCH=stream``): a request only writes what its change owes, and
the dispatcher, reading the registrations' stream, delivers it once; what it misses, the time checks
deliver. Also the DynamoDB requests a registration makes."""
from __future__ import annotations

import dataclasses
from collections import Counter

import boto3
import pytest

import tests.environment
from chalicelib.services import outbox, participant, registrations, time_checks

WORKSHOP = "WKSHP-DISP"
APPLICANT = {"workshop": WORKSHOP, "first_name": "Ada", "last_name": "Lovelace", "company": "Analytical",
             "accept_terms": True}


class Stream:
    """The customers table's stream in moto, read from where it was when this was made."""

    def __init__(self, table: str):
        # the plain regional endpoint: moto routes an account-based one (``<account>.ddb...``) to DynamoDB
        region = tests.environment.REGION
        self.client = boto3.client("dynamodbstreams", region_name=region,
                                   endpoint_url=f"https://streams.dynamodb.{region}.amazonaws.com")
        arn = self.client.list_streams(TableName=table)["Streams"][0]["StreamArn"]
        shard = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = self.client.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                                       ShardIteratorType="LATEST")["ShardIterator"]

    def read(self) -> list[dict]:
        page = self.client.get_records(ShardIterator=self.iterator, Limit=1000)
        self.iterator = page["NextShardIterator"]
        return page["Records"]


@pytest.fixture
def streamed(platform, sync, recording):
    """The platform in stream mode, with confirmation on, and the stream read from now on."""
    platform.settings = dataclasses.replace(platform.settings, outbox_dispatch="stream", confirm_minutes=15)
    sync((WORKSHOP, {"seats": 1}))
    return Stream(platform.settings.table_name("customers"))


def register(platform, email: str) -> dict:
    created = registrations.register(platform, {**APPLICANT, "email": email})
    assert created is not None
    return created


def test_a_registration_answers_before_its_mail_and_the_dispatcher_sends_it_once(platform, streamed, recording):
    register(platform, "ada@example.com")
    assert recording.sent == []  # the request only claimed
    records = streamed.read()
    assert outbox.dispatch(platform, records) == 1
    assert [m.subject for m in recording.to("ada@example.com")] == [f"Confirm your seat: Workshop {WORKSHOP}"]
    later = streamed.read()  # the lease and the settle: nothing more is owed
    assert later and outbox.dispatch(platform, later) == 0
    assert outbox.dispatch(platform, records + later) == 0  # a batch delivered again sends nothing twice
    assert len(recording.sent) == 1


def test_confirming_owes_the_welcome_and_the_order_which_the_dispatcher_sends(platform, streamed, recording, tables):
    created = register(platform, "ada@example.com")
    outbox.dispatch(platform, streamed.read())
    participant.confirm(platform, created["id"])
    assert len(recording.sent) == 1  # still only the confirmation email
    outbox.dispatch(platform, streamed.read())
    subjects = sorted(m.subject.split(" ")[0] for m in recording.sent[1:])
    assert subjects == ["CREATE", "You're"]  # the order to the backend and the welcome
    assert tables.customers.get(created["id"]).outbox is None


def test_what_the_dispatcher_missed_the_time_checks_deliver(platform, streamed, recording, clock):
    register(platform, "ada@example.com")
    streamed.read()  # lost: never dispatched
    time_checks.tick(platform)
    assert recording.sent == []  # not due yet: the dispatcher had its chance first
    clock.advance(minutes=2)
    time_checks.tick(platform)
    assert [m.subject for m in recording.sent] == [f"Confirm your seat: Workshop {WORKSHOP}"]


def test_a_failed_delivery_waits_for_its_retry_time_not_for_the_next_record(platform, streamed, recording, clock):
    recording.failing = True
    register(platform, "ada@example.com")
    assert outbox.dispatch(platform, streamed.read()) == 1  # tried, failed, backing off
    recording.failing = False
    assert outbox.dispatch(platform, streamed.read()) == 0  # its settle record: due later
    assert recording.sent == []
    clock.advance(minutes=2)
    time_checks.tick(platform)
    assert len(recording.sent) == 1


@pytest.mark.parametrize("limits", [False, True], ids=["limits-off", "limits-on"])
def test_a_registration_makes_two_dynamodb_requests_and_a_confirmation_two(platform, streamed, counted, limits):
    """The request path only claims: the workshop comes from the recent snapshot, a free student is
    found by one query, and the claim is one transaction that also counts the client's requests,
    the mailbox's mails, the client's holds and the domain's registrations.
    Confirming reads the hold and updates it. (docs/features.md: "The request path only claims".)"""
    import dataclasses

    platform.settings = dataclasses.replace(platform.settings, rate_limit_per_minute=30 if limits else 0)
    platform.stores.recent.seconds = 60  # the pages' snapshot of the workshops, as deployed
    registrations.catalog(platform)  # the snapshot, as any page shown before has made it
    counted.clear()
    created = registrations.register(platform, {**APPLICANT, "email": "ada@example.com"}, client="203.0.113.7")
    registering = dict(counted)
    counted.clear()
    participant.confirm(platform, created["id"])
    print(f"registration: {registering}; confirmation: {dict(counted)}")
    assert registering == {"Query": 1, "TransactWriteItems": 1}
    assert dict(counted) == {"GetItem": 1, "UpdateItem": 1}


def test_a_student_taken_after_the_query_costs_one_more_transaction_not_another_read(
        platform, sync, tables, counted, monkeypatch):
    """Two claims that picked the same student: the loser tries the next student it read at once,
    without reading the workshop or the free students again."""
    from chalicelib.store import registrations as store

    platform.settings = dataclasses.replace(platform.settings, outbox_dispatch="stream")
    sync((WORKSHOP, {"seats": 3}))
    platform.stores.recent.seconds = 60
    registrations.catalog(platform)
    taken = tables.customers.get(register(platform, "ada@example.com")["id"]).student_id
    read, reads = store.free_students, []
    monkeypatch.setattr(store, "free_students", lambda t, workshop: reads.append(1) or [taken, *read(t, workshop)])
    counted.clear()
    created = register(platform, "bob@example.com")
    assert len(reads) == 1 and counted["TransactWriteItems"] == 2 and "GetItem" not in counted, dict(counted)
    bob = tables.customers.get(created["id"])
    assert bob.student_id not in (None, taken)



def test_a_claim_that_finds_no_free_student_takes_a_waitlist_place_at_once(platform, streamed, tables, counted):
    """The snapshot still shows a free seat that another process's claim took: the claim finds no
    free student and joins the waitlist in the same attempt (no new read of the workshop), and the
    next claim of this process goes straight to the waitlist."""
    platform.stores.recent.seconds = 60
    registrations.catalog(platform)
    register(platform, "ada@example.com")  # the only seat
    stale = platform.stores.seats.get_workshop(WORKSHOP)
    platform.stores.recent.saw(dataclasses.replace(stale, seats_free=1))  # as another process's snapshot
    counted.clear()
    created = register(platform, "bob@example.com")
    assert "GetItem" not in counted and counted["TransactWriteItems"] == 1, dict(counted)
    assert tables.customers.get(created["id"]).waitlist_seq is not None
    counted.clear()
    register(platform, "carol@example.com")
    assert dict(counted) == {"TransactWriteItems": 1}, dict(counted)


def test_a_batch_waits_for_the_next_window_instead_of_trying_what_the_rate_cannot_send(platform, streamed, counted):
    """Once this second's share for participant mail is spent, the dispatcher waits for the next
    one before taking the next registration's outbox: no lease, token and settle spent in vain."""

    from tests.mailtools import throttled_mail

    ses, wall = throttled_mail(platform, per_second=100, rate=3)  # a window: 3 emails, 2 of them bulk
    for n in range(6):
        register(platform, f"p{n}@example.com")
    counted.clear()
    assert outbox.dispatch(platform, streamed.read()) == 6
    assert len(ses.sent) == 6
    assert max(Counter(second for second, _subject, _to in ses.sent).values()) == 2  # never past the share
    # per email: its outbox leased and settled, one token; plus one refused token per window
    assert counted["UpdateItem"] <= 6 * 3 + 3, dict(counted)


def test_mail_deferred_for_the_rate_is_retried_once_a_window_not_at_each_record_of_its_own(platform, streamed,
                                                                                         monkeypatch):
    """Past its time for waiting, a batch tries the rest: a deferred email stays due at once; its
    settle is itself a stream record. Were that record owed again straight away, the dispatcher
    would retry (lease, render, settle) as fast as it reads its own writes for as long as the
    backlog lasts: it retries in the next window of the budget."""
    from tests.mailtools import throttled_mail

    monkeypatch.setattr(outbox, "DISPATCH_WAIT_SECONDS", 0.0)
    ses, wall = throttled_mail(platform, per_second=100, rate=3)  # a window: 3 emails, 2 of them bulk
    for n in range(6):
        register(platform, f"p{n}@example.com")
    outbox.dispatch(platform, streamed.read())
    assert len(ses.sent) == 2  # the rest wait for the rate
    for _ in range(20):  # the dispatcher fed what it writes, as the stream feeds it
        records, before = streamed.read(), wall.now()
        if not records:
            break
        if outbox.dispatch(platform, records):
            assert wall.now() > before, "a deferred email was retried in the window that deferred it"
    assert len(ses.sent) == 6
