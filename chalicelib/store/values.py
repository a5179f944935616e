"""pynamodb items -> the domain's read-only values (:mod:`chalicelib.domain.values`)."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from chalicelib.domain import outbox
from chalicelib.domain.values import Delivery, Hook, Registration, Student, Workshop

V = TypeVar("V")


_COUNTERS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """(name, is a counter) of each field of a value class."""
    if cls not in _COUNTERS:
        _COUNTERS[cls] = tuple((f.name, f.type in ("int", int)) for f in dataclasses.fields(cls))
    return _COUNTERS[cls]


def _value(cls: type[V], item: Any, **given: Any) -> V:
    """``cls`` from an item's attributes of the same names; a missing one (a projection, a
    partial read) takes the value's default."""
    values = {}
    for name, counter in _fields(cls):
        value = given[name] if name in given else getattr(item, name, None)
        if value is not None:
            values[name] = int(value) if counter else value
    return cls(**values)


def workshop(item: Any) -> Workshop:
    return _value(Workshop, item)


def student(item: Any) -> Student:
    return _value(Student, item)


def _entries(stored: list[str] | None) -> tuple[outbox.Entry, ...]:
    """The outbox's entries; one that does not parse (written by another version) is left out
    here and dropped by the next settle, never fatal to reading the registration."""
    entries = []
    for text in stored or ():
        try:
            entries.append(outbox.parse(text))
        except ValueError:
            continue
    return tuple(entries)


def registration(item: Any) -> Registration:
    return _value(Registration, item, outbox=_entries(item.outbox))


def hook(item: Any) -> Hook:
    return _value(Hook, item, id=item.sk, created_at=item.at, events=list(item.events or []))


def delivery(item: Any) -> Delivery:
    return _value(Delivery, item, id=item.sk, created_at=item.at, due_at=item.delivery_due_at)
