"""Participant-facing text made in Python (a field's error, a refusal, a notice): English, as the
JSON API and the logs show it, that remembers the catalog message it came from, so that a page or
a mail shows it in the participant's language (:mod:`chalicelib.adapters.translations`).

``N_`` marks a message for extraction (Babel's default keywords include it): ``N_("%(label)s is
required.", label=N_("Email"))``. Placeholders are named (``%(name)s``); a value may itself be a
:class:`Text`, translated with the message.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Text(str):
    """The English text of ``msgid`` filled with ``values``; the message and values are kept."""

    msgid: str
    values: Mapping[str, Any]

    def __new__(cls, msgid: str, values: Mapping[str, Any] | None = None) -> Text:
        values = dict(values or {})
        made = super().__new__(cls, msgid % values if values else msgid)
        made.msgid = msgid
        made.values = values
        return made

    def filled(self, **values: Any) -> Text:
        """The same message with (more) values: a subject line's title, a count."""
        return Text(self.msgid, {**self.values, **values})


def N_(msgid: str, **values: Any) -> Text:
    """gettext's name for "mark for the catalog, translate where shown"."""
    return Text(msgid, values)
