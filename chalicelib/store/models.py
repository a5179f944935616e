"""pynamodb models for the platform's tables (docs/architecture.md, "Data model").

These classes name no table: they define attributes and indexes, and build conditions and
update actions. :func:`chalicelib.store.tables.bind` derives, once per settings, a subclass
of each that is bound to that stack's tables; only those do I/O, so a model that was never
bound cannot silently talk to some default table.
"""
from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model


class _Meta:
    billing_mode = "PAY_PER_REQUEST"
    max_pool_connections = 64
    max_retry_attempts = 3


class WorkshopModel(Model):
    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute()
    description = UnicodeAttribute()
    category = UnicodeAttribute()
    duration_minutes = NumberAttribute()
    location = UnicodeAttribute()
    presenter = JSONAttribute(null=True)
    replay_url = UnicodeAttribute(null=True)
    badge = UnicodeAttribute(null=True)
    active = BooleanAttribute(default=True)
    beta = BooleanAttribute(default=False)
    priority = NumberAttribute(default=100)
    content_version = UnicodeAttribute(null=True)
    student_prefix = UnicodeAttribute()
    student_from = NumberAttribute()
    student_to = NumberAttribute()
    appliance = JSONAttribute(null=True)
    extension_minutes = NumberAttribute(default=30)
    extension_max = NumberAttribute(default=2)
    warm_pool = NumberAttribute(default=0)
    checks = NumberAttribute(default=0)  # exercise checks in its notebooks (domain/checks.py)
    expected = NumberAttribute(null=True)  # an organiser's expected turnout (chalicelib/domain/warming.py)
    starts_at = UTCDateTimeAttribute(null=True)  # an organiser's scheduled start
    confirm = BooleanAttribute(null=True)  # False: registrations need no email confirmation
    message = UnicodeAttribute(null=True)  # the facilitator's message to every participant (live room)
    message_at = UTCDateTimeAttribute(null=True)
    extend_round = UnicodeAttribute(null=True)  # the live room's last "extend all" (a form sent twice extends once)
    seats_total = NumberAttribute(default=0)
    seats_free = NumberAttribute(default=0)
    waitlist_seq = NumberAttribute(default=0)  # waitlist places this workshop has given (a claim adds one)
    # what an organiser changed on the dashboard ({"active", "duration_minutes", "capacity"}):
    # a catalog sync keeps these instead of the folder's values
    overrides = JSONAttribute(null=True)
    # fields an organiser handed back to the folder: the next catalog sync applies the folder's
    # value (and removes this)
    handed_back = JSONAttribute(null=True)
    survey = JSONAttribute(null=True)  # the workshop's own survey questions (workshop.yaml)
    translations = JSONAttribute(null=True)  # {language: {title, description}} (workshop.yaml)
    timezone = UnicodeAttribute(null=True)  # IANA zone name of its calendar invitations (workshop.yaml)
    last_return_at = UTCDateTimeAttribute(null=True)  # when a seat last came back
    report_sent_at = UTCDateTimeAttribute(null=True)  # when the event report was last mailed


class FreeStudentIndex(GlobalSecondaryIndex):
    """Sparse: only free students carry ``free_workshop``, so a query lists candidates."""

    class Meta:
        index_name = "free-by-workshop"
        projection = IncludeProjection(["warm", "warming_since"])

    free_workshop = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class StudentWorkshopIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-workshop"
        projection = AllProjection()

    workshop_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class StudentModel(Model):
    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    workshop_id = UnicodeAttribute()
    location = UnicodeAttribute()
    status = UnicodeAttribute(default="free")
    free_workshop = UnicodeAttribute(null=True)
    registration_id = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute(null=True)
    hub_url = UnicodeAttribute(null=True)
    warm = BooleanAttribute(null=True)  # a free student whose server already runs (warm pool)
    warming_since = UTCDateTimeAttribute(null=True)
    warm_cycles = NumberAttribute(default=0)
    holder = UnicodeAttribute(null=True)  # the name of whoever holds the seat, for the live room
    live = JSONAttribute(null=True)  # what the notebook reported of its registration (domain/live.py)
    live_seq = NumberAttribute(null=True)  # the last batch of events taken: a replay is refused

    free_index = FreeStudentIndex()
    workshop_index = StudentWorkshopIndex()


class WaitlistIndex(GlobalSecondaryIndex):
    """Sparse: only waitlisted registrations carry ``waitlist_workshop``; ordered by arrival."""

    class Meta:
        index_name = "waitlist"
        projection = KeysOnlyProjection()

    waitlist_workshop = UnicodeAttribute(hash_key=True)
    waitlist_seq = NumberAttribute(range_key=True)


class OutboxIndex(GlobalSecondaryIndex):
    """Sparse: registrations with mail still to send, by when the next try is due."""

    class Meta:
        index_name = "outbox"
        projection = KeysOnlyProjection()

    outbox_state = UnicodeAttribute(hash_key=True)
    outbox_due_at = UTCDateTimeAttribute(range_key=True)


class DueIndex(GlobalSecondaryIndex):
    """Sparse: what the time checks must look at, by phase and by when it is due.

    ``due_state`` is ``confirming`` (due = when an unconfirmed hold expires), ``provisioning``
    (due = the stuck deadline), ``active`` (due = the reminder, then the end) or ``cleaning``
    (due = when to retry a stuck cleanup).
    """

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_state = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class EmailIndex(GlobalSecondaryIndex):
    """A participant's registrations, for level badges (how many workshops they finished)."""

    class Meta:
        index_name = "by-email"
        projection = IncludeProjection(["status", "workshop_id"])

    email = UnicodeAttribute(hash_key=True)


class RegistrationModel(Model):
    """A participant's registration (the "customers" table)."""

    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    email_key = UnicodeAttribute(null=True)  # the email guard's key (domain.registration.mailbox_key)
    first_name = UnicodeAttribute()
    last_name = UnicodeAttribute()
    company = UnicodeAttribute()
    workshop_id = UnicodeAttribute()
    student_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    ends_at = UTCDateTimeAttribute(null=True)
    reminder_sent = BooleanAttribute(default=False)
    extensions_used = NumberAttribute(default=0)
    extensions_total = NumberAttribute(default=0)  # the organiser's extensions too (domain/calendar.py)
    completion = NumberAttribute(null=True)
    checks_passed = NumberAttribute(null=True)  # of its workshop's exercise checks, at cleanup
    waitlist_workshop = UnicodeAttribute(null=True)
    waitlist_seq = NumberAttribute(null=True)  # a waitlist place: orders the waitlist (registrations.place_number)
    outbox = ListAttribute(of=UnicodeAttribute, null=True)
    outbox_state = UnicodeAttribute(null=True)
    outbox_due_at = UTCDateTimeAttribute(null=True)
    outbox_lease = UTCDateTimeAttribute(null=True)  # until when a sender holds the outbox
    outbox_attempts = NumberAttribute(default=0)
    outbox_error = UnicodeAttribute(null=True)
    progress = UnicodeAttribute(null=True)  # the provisioning step shown on the status page
    due_state = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    confirm_by = UTCDateTimeAttribute(null=True)  # an unconfirmed hold expires then
    finished_at = UTCDateTimeAttribute(null=True)
    cleanup_attempts = NumberAttribute(default=0)
    resets_used = NumberAttribute(default=0)
    failure = UnicodeAttribute(null=True)
    ttl = NumberAttribute(null=True)  # epoch seconds: DynamoDB deletes the item after it
    survey = JSONAttribute(null=True)  # the participant's survey answer (domain/survey.py)
    survey_at = UTCDateTimeAttribute(null=True)
    confirmed_at = UTCDateTimeAttribute(null=True)
    waitlisted_at = UTCDateTimeAttribute(null=True)
    promoted_at = UTCDateTimeAttribute(null=True)
    first_seen_at = UTCDateTimeAttribute(null=True)  # the first event from the participant's notebook
    ordered_at = UTCDateTimeAttribute(null=True)  # a scheduled session's seat: when its environment was ordered
    badge_earned = BooleanAttribute(null=True)  # decided when it finished
    reschedules = NumberAttribute(default=0)  # times its scheduled start moved before it started
    language = UnicodeAttribute(null=True)  # the participant's language, of every mail (domain/languages.py)
    mail_bounced_at = UTCDateTimeAttribute(null=True)  # SES reported a bounce or complaint (services/mail_feedback.py)
    mail_bounce = UnicodeAttribute(null=True)  # "permanent", "transient" or "complaint"

    waitlist_index = WaitlistIndex()
    outbox_index = OutboxIndex()
    due_index = DueIndex()
    email_index = EmailIndex()


class EmailClaimModel(Model):
    """One item per email with a live registration: the atomic uniqueness guard."""

    class Meta(_Meta):
        pass

    email = UnicodeAttribute(hash_key=True)
    registration_id = UnicodeAttribute()


class NonceModel(Model):
    """Order nonces already seen: a replayed order finds its nonce here and is refused."""

    class Meta(_Meta):
        pass

    nonce = UnicodeAttribute(hash_key=True)
    expires = NumberAttribute()  # TTL attribute
    hits = NumberAttribute(null=True)  # a rate-limit window's count (key ``rate:<scope>:<value>:<window>``)
    window = NumberAttribute(null=True)  # a pacing slot's current window (key ``pace:<scope>:<slot>``)


class DeliveriesDueIndex(GlobalSecondaryIndex):
    """Sparse: webhook deliveries still to attempt, by when the next attempt is due."""

    class Meta:
        index_name = "deliveries-due"
        projection = KeysOnlyProjection()

    delivery_state = UnicodeAttribute(hash_key=True)
    delivery_due_at = UTCDateTimeAttribute(range_key=True)


class AdminModel(Model):
    """The organiser's side in one table: audit entries (pk ``AUDIT``, sk ``<time>#<id>``),
    webhooks (pk ``HOOK``, sk the hook id) and their deliveries (pk ``DELIVERY#<hook>``,
    sk ``<time>#<id>``)."""

    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UTCDateTimeAttribute()
    # audit entry
    actor = UnicodeAttribute(null=True)
    action = UnicodeAttribute(null=True)
    target = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    detail = JSONAttribute(null=True)
    # webhook
    url = UnicodeAttribute(null=True)
    events = ListAttribute(of=UnicodeAttribute, null=True)
    secret = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    # delivery
    hook_id = UnicodeAttribute(null=True)
    event = UnicodeAttribute(null=True)
    body = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)  # pending | delivered | failed
    attempts = NumberAttribute(default=0)
    last_code = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    last_attempt_at = UTCDateTimeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)
    delivery_state = UnicodeAttribute(null=True)
    delivery_due_at = UTCDateTimeAttribute(null=True)
    expires = NumberAttribute(null=True)  # TTL attribute (deliveries)

    deliveries_due = DeliveriesDueIndex()


MODELS: dict[str, type[Model]] = {
    "workshops": WorkshopModel,
    "students": StudentModel,
    "customers": RegistrationModel,
    "emails": EmailClaimModel,
    "nonces": NonceModel,
    "admin": AdminModel,
}
