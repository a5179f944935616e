"""Outbox entries: one written form, parsed back the same, anything else refused."""
from __future__ import annotations

import pytest

from chalicelib.domain import outbox


def test_every_stored_spelling_parses_back_to_the_same_entry():
    for text in ["welcome", "waitlisted", "promoted", "reminder", "thanks", "apology", "level:3", "order:CREATE",
                 "order:CLEANUP:2", "order:RESET:1:password", "order:PURGE", "webhook:registered"]:
        assert outbox.parse(text).format() == text
    assert outbox.parse("order:CREATE:0:all") == outbox.order("CREATE")
    for junk in ["", "order:", "order:RESET:x", "level:", "nonsense:3", "order:RESET:1:everything"]:
        with pytest.raises(ValueError):
            outbox.parse(junk)
