"""The languages the participant's side is shipped in, which one a request asks for, and a
workshop's title and description in it.

English is the default and the language of the messages themselves; every other shipped language
has a complete catalog, ``chalicelib/locale/<language>/LC_MESSAGES/messages.po`` (``make check``
refuses one with a message left untranslated or fuzzy).
"""
from __future__ import annotations

import dataclasses

from chalicelib.domain.values import Workshop

SHIPPED = ("en", "fr")
DEFAULT = SHIPPED[0]
NAMES = {"en": "English", "fr": "Français"}  # each in its own language: the language switch shows them
COOKIE = "wod_lang"  # the language a participant chose with the switch
MAX_RANGES = 20  # of an Accept-Language header: a browser sends a few


def shipped(tag: object) -> str | None:
    """The shipped language a language tag names (``fr``, ``fr-CA``, ``FR_ca``), or None."""
    if not isinstance(tag, str) or len(tag) > 35:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SHIPPED else None


def negotiate(accept_language: str | None) -> str:
    """The shipped language an ``Accept-Language`` header prefers: the highest q-value wins (the
    first listed among equals), ``q=0`` refuses a language, a regional tag (``fr-CA``) counts as its
    language; the default when the header names none of them."""
    best, best_q = DEFAULT, 0.0
    for item in (accept_language or "").split(",")[:MAX_RANGES]:
        tag, _, parameters = item.partition(";")
        q = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        language = shipped(tag)
        if language is not None and 0 < q <= 1 and q > best_q:
            best, best_q = language, q
    return best


def chosen(cookie: str | None, accept_language: str | None) -> str:
    """A request's language: the switch's cookie when it names a shipped language, else the
    browser's ``Accept-Language``."""
    return shipped(cookie) or negotiate(accept_language)


def localized(workshop: Workshop, language: str | None) -> Workshop:
    """The workshop with its title and description in ``language`` where its folder gives them
    (``translations:`` in workshop.yaml), its own otherwise."""
    given = (workshop.translations or {}).get(language or DEFAULT) or {}
    if not given:
        return workshop
    return dataclasses.replace(workshop, title=given.get("title") or workshop.title,
                               description=given.get("description") or workshop.description)
