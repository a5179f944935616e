"""The one exception hierarchy. Errors say what went wrong, never how to answer it: the HTTP
status of each kind is decided in one place, ``chalicelib.web.http``."""
from __future__ import annotations

from chalicelib.domain.text import N_


class WodError(Exception):
    """Base of every error the platform raises on purpose."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(WodError):
    """Input failed validation; ``fields`` maps each field to what was wrong."""

    code = "invalid"

    def __init__(self, fields: dict[str, str], message: str = N_("Some fields need attention.")):
        super().__init__(message)
        self.fields = dict(fields)


class Malformed(InvalidInput):
    """A body no parser should take: nested too deeply, too large. Refused before anything reads it."""

    code = "malformed"


class NotFound(WodError):
    code = "not_found"


class Conflict(WodError):
    code = "conflict"


class HoldExpired(Conflict):
    """A registration was confirmed after its hold expired: its seat went back to the pool."""

    code = "hold_expired"

    def __init__(self, workshop_id: str):
        super().__init__(N_("This registration was not confirmed in time, so its seat went back to the pool. "
                            "Please register again from the workshop page."))
        self.workshop_id = workshop_id


class Unauthenticated(WodError):
    """No credentials were sent where they are needed."""

    code = "unauthorized"


class Forbidden(WodError):
    """A signature, token or key was missing, wrong or stale."""

    code = "forbidden"


class WrongMediaType(WodError):
    """A state-changing request without the content type its route takes (what a page elsewhere
    can send without asking the browser first: no type, ``text/plain``, a form)."""

    code = "unsupported_media_type"


class WrongHost(WodError):
    """The request names a host that is not the platform's public one (DNS rebinding)."""

    code = "wrong_host"


class RateLimited(WodError):
    """Too many requests from one client address or for one email domain; retry after ``retry_after`` s."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(WodError):
    """A dependency (DynamoDB, mail relay) failed; the caller may retry."""

    code = "unavailable"


class CatalogError(WodError):
    """A workshop folder is invalid; ``problems`` lists ``(file, field, message)``."""

    code = "catalog"

    def __init__(self, problems: list[tuple[str, str, str]]):
        super().__init__(f"{len(problems)} problem(s) in the workshop folders")
        self.problems = problems
