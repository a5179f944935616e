"""A wall clock tests move by sleeping, an SES client that throttles like the real one, and the
calendar invitation a mail carries, read from its MIME."""
from __future__ import annotations

import threading
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage

from botocore.exceptions import ClientError
from icalendar import Calendar

from chalicelib.adapters.mail import SesMailer, to_mime
from chalicelib.domain.mail import Email
from chalicelib.services.pacing import Pacer, constant

START = 1_800_000_000.0


class WallClock:
    """Wall time that only moves when someone sleeps (or the test moves it)."""

    def __init__(self, start: float = START):
        self.t = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds


class ThrottlingSes:
    """``send_raw_email`` as SES answers it: past ``per_second`` sends in one wall second it raises
    ``Throttling`` ("Maximum sending rate exceeded."); past ``daily`` sends, the daily quota. During
    a ``storm`` (a range of wall seconds) it throttles everything. Keeps what it sent, in order."""

    def __init__(self, wall: WallClock, per_second: int, daily: int | None = None):
        self.wall, self.per_second, self.daily = wall, per_second, daily
        self.storm: tuple[float, float] = (0.0, 0.0)
        self.sent: list[tuple[int, str, str]] = []  # (wall second, subject, to)
        self.requests: list[dict] = []
        self.throttled = 0
        self.quota_reads = 0
        self._per_second: Counter[int] = Counter()
        self._lock = threading.Lock()

    def send_raw_email(self, **request) -> dict:
        with self._lock:
            second = int(self.wall.now())
            if self.daily is not None and len(self.sent) >= self.daily:
                raise ClientError({"Error": {"Code": "Throttling", "Message": "Daily message quota exceeded."}},
                                  "SendRawEmail")
            if self._per_second[second] >= self.per_second or self.storm[0] <= self.wall.now() < self.storm[1]:
                self.throttled += 1
                raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}},
                                  "SendRawEmail")
            self._per_second[second] += 1
            self.requests.append(request)
            msg = message_from_bytes(request["RawMessage"]["Data"], policy=policy.default)
            self.sent.append((second, str(msg["Subject"]), str(msg["To"])))
        return {"MessageId": str(len(self.sent))}

    def get_send_quota(self) -> dict:
        self.quota_reads += 1
        return {"Max24HourSend": float(self.daily or 50_000), "MaxSendRate": float(self.per_second),
                "SentLast24Hours": float(len(self.sent))}

    def subjects(self) -> list[str]:
        return [subject for _, subject, _ in self.sent]

    def per_second_counts(self) -> Counter[int]:
        return Counter(second for second, _, _ in self.sent)

    def body(self, index: int) -> str:
        msg = message_from_bytes(self.requests[index]["RawMessage"]["Data"], policy=policy.default)
        return msg.get_body(("plain",)).get_content()


def throttled_mail(context, per_second: int, rate: float | None = None, max_wait: float = 3.0,
                   share: float = 0.7, daily: int | None = None) -> tuple[ThrottlingSes, WallClock]:
    """Give ``context`` a throttling SES and a pacer at ``rate`` (default: SES's own), both on one
    wall clock that moves only when the pacer waits."""
    wall = WallClock()
    ses = ThrottlingSes(wall, per_second, daily)
    context.mailer = SesMailer(lambda: ses, "noreply@wod.local")
    context.pacer = Pacer(constant(rate or per_second), share, max_wait, now=wall.now, sleep=wall.sleep)
    return ses, wall


def invitation_of(mail: Email | EmailMessage) -> tuple[str, Calendar] | None:
    """The calendar invitation of a mail (an :class:`Email` goes through the MIME the mailers
    send): its ``text/calendar`` part's ``method`` parameter and the calendar parsed; None when it
    carries none. The ``invite.ics`` attachment must hold the same file."""
    msg = to_mime(mail, "Workshops-on-Demand <noreply@wod.local>") if isinstance(mail, Email) else mail
    msg = message_from_bytes(msg.as_bytes(), policy=policy.default)  # as a mail client reads it
    calendars = [part for part in msg.walk() if part.get_content_type() == "text/calendar"]
    attached = [part for part in msg.iter_attachments() if part.get_filename() == "invite.ics"]
    if not calendars:
        assert not attached
        return None
    [part], [ics] = calendars, attached
    assert not part.is_attachment() and part.get_content_charset() == "utf-8"
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.get_payload()[0].iter_parts()] == [
        "text/plain", "text/html", "text/calendar"]
    data = part.get_payload(decode=True)
    assert ics.get_content_type() == "application/ics" and ics.get_payload(decode=True) == data
    return part.get_param("method"), Calendar.from_ical(data)
