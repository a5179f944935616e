"""Pure timing rules of a registration's life."""
from __future__ import annotations

from datetime import datetime, timedelta

# due_state values of the time-check index
DUE_CONFIRMING = "confirming"  # due = when an unconfirmed hold expires
DUE_PROVISIONING = "provisioning"
DUE_ACTIVE = "active"
DUE_CLEANING = "cleaning"


def reminder_at(ends_at: datetime, started_at: datetime, reminder: timedelta) -> datetime:
    """When the "ends soon" email is due; for a session shorter than the warning, at its start."""
    return max(ends_at - reminder, started_at)


def extension_refusal(extensions_used: int, extension_max: int, waitlist_length: int) -> str | None:
    """Why an extension is refused, or None when it is allowed."""
    if extension_max <= 0:
        return "This workshop cannot be extended."
    if extensions_used >= extension_max:
        return f"You have already used the {extension_max} extension(s) this workshop allows."
    if waitlist_length > 0:
        return "People are waiting for a seat in this workshop, so it cannot be extended."
    return None


def badge_level(finished_workshops: int, levels: tuple[int, ...]) -> int | None:
    """The level reached exactly now (3, 5, 7, ...), or None."""
    return finished_workshops if finished_workshops in levels else None
