"""pynamodb items -> the domain's read-only values (:mod:`chalicelib.domain.values`)."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from chalicelib.domain import outbox
from chalicelib.domain.values import Delivery, Hook, Registration, Student, Workshop

V = TypeVar("V")


_FIELDS: dict[type, tuple[tuple[str, Any, bool], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, default, is a counter) of each field of a value class."""
    if cls in _FIELDS:
        return _FIELDS[cls]
    found = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        found.append((f.name, default, f.type in ("int", int)))
    _FIELDS[cls] = tuple(found)
    return _FIELDS[cls]


def _value(cls: type[V], item: Any, **given: Any) -> V:
    """``cls`` from an item's attributes of the same names; missing ones (a projection, a partial
    read) take the value's default."""
    values = {}
    for name, default, counter in _fields(cls):
        if name in given:
            values[name] = given[name]
            continue
        value = getattr(item, name, None)
        if value is None:
            value = default
        elif counter:
            value = int(value)
        values[name] = value
    return cls(**values)


def workshop(item: Any) -> Workshop:
    return _value(Workshop, item)


def student(item: Any) -> Student:
    return _value(Student, item)


def registration(item: Any) -> Registration:
    return _value(Registration, item, outbox=tuple(outbox.parse(e) for e in (item.outbox or ())))


def hook(item: Any) -> Hook:
    return _value(Hook, item, id=item.sk, created_at=item.at, events=list(item.events or []))


def delivery(item: Any) -> Delivery:
    return _value(Delivery, item, id=item.sk, created_at=item.at, due_at=item.delivery_due_at)
