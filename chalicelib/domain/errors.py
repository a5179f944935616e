"""The one exception hierarchy; HTTP mapping happens in ``chalicelib.web.http``."""
from __future__ import annotations


class WodError(Exception):
    """Base of every error the platform raises on purpose."""

    status = 500
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(WodError):
    """Input failed validation; ``fields`` maps each field to what was wrong."""

    status = 422
    code = "invalid"

    def __init__(self, fields: dict[str, str], message: str = "Some fields need attention."):
        super().__init__(message)
        self.fields = dict(fields)


class NotFound(WodError):
    status = 404
    code = "not_found"


class Conflict(WodError):
    status = 409
    code = "conflict"


class Unavailable(WodError):
    """A dependency (DynamoDB, mail relay) failed; the caller may retry."""

    status = 503
    code = "unavailable"


class CatalogError(WodError):
    """A workshop folder is invalid; ``problems`` lists ``(file, field, message)``."""

    code = "catalog"

    def __init__(self, problems: list[tuple[str, str, str]]):
        super().__init__(f"{len(problems)} problem(s) in the workshop folders")
        self.problems = problems
