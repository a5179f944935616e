"""Translate pynamodb failures into the domain's errors, in one place."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from pynamodb.exceptions import PynamoDBException

from chalicelib.domain.errors import Unavailable, WodError

F = TypeVar("F", bound=Callable)


def translated(func: F) -> F:
    """Let domain errors through; turn storage failures into :class:`Unavailable`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except WodError:
            raise
        except PynamoDBException as exc:
            raise Unavailable("The registration service is busy; please try again in a moment.") from exc

    return wrapper  # type: ignore[return-value]
