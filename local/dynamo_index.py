"""Index queries on the embedded DynamoDB that read what they match, not the whole table.

moto (5.2.5) answers a Query by walking and sorting every item of the table
(``Table.query`` iterates ``Table.all_items()``, a sorted copy of the table), so a time check
that reads 10 due registrations among 50 000 costs seconds. DynamoDB reads the index
partition. ``install()`` makes moto do the same without changing one answer:

* **Where.** moto's ``Table.query`` is kept as it is (key conditions, sorting, ``Limit``,
  ``ExclusiveStartKey``, the 1 MB page, projections, filters, errors); only the list its
  ``self.all_items()`` returns, for that one call on that thread, is replaced by a subset that
  provably leaves its output unchanged:

  1. *partition*: every item whose attribute equals the query's index hash key value (moto
     drops the others at once, and the subset keeps the table order it walks);
  2. *window*, for an index with a sort key and one sort-key condition (``=``, ``<``,
     ``<=``, ``>``, ``>=``, ``BETWEEN``, ``begins_with``): the items of the partition that
     satisfy it, plus the one item that follows them in the order moto reads. moto's loop
     over the partition does nothing with an item that does not match except stop the page
     on it when ``Limit`` was reached (so the next item is kept) or when it would push the
     page over 1 MB (so the window is used only when its items, plus the largest possible
     item, stay under 1 MB). Items before the window never match, and ``ExclusiveStartKey``
     skips a prefix of the same order, so dropping them changes nothing. A first page
     (no ``ExclusiveStartKey``) with a ``Limit`` reads only the run's first ``Limit`` + 1
     items in the query's order: moto stops on the one after the ``Limit``-th.

  Queries on the table's own key read the hash key's bucket (moto keeps items by hash key).
  Anything else (no hash condition, multi-attribute keys, ``QueryFilter``, numbers next to
  strings in one key, ``Limit`` < 1...) takes moto's walk.

* **What is kept.** Per table (an attribute of moto's ``Table``: it disappears with the table,
  and when moto deep-copies a table to roll a transaction back to, the copy carries a copy of
  it), built from one walk the first time an attribute (pair) is queried: for an
  index hash attribute, value -> primary keys; for a (hash, sort) pair, value -> the primary
  keys sorted as moto sorts the index. Keys and values are stored as immutable
  ``(type, value)`` tuples, never moto's objects.

* **When it changes.** Every item write in moto goes through ``Table.put_item``,
  ``Table.delete_item`` (PutItem, DeleteItem, BatchWriteItem, TransactWriteItems, PartiQL,
  ImportTable) or ``DynamoDBBackend.update_item`` (UpdateItem and transaction updates, which
  change the stored item's attributes in place). Each is wrapped: afterwards - whether it
  succeeded or raised - the written primary key is read again from the table and its entries
  moved. moto has no TTL deletion. A new table object (create, restore, a transaction's
  rollback copy) has no index of its own unless deep-copied with one.

* **Transactions** (``install(transactions=True)``, the default). moto's TransactWriteItems
  deep-copies every table it names before writing (O(table) per transaction: 2 s at 50 000
  registrations, so each expiry or stuck-provisioning failure in a time check) and puts the
  copies back on failure. Instead, the write hooks journal each key's item before its first
  write in the transaction and a rollback restores those keys, and the index with them (see
  "transactions" below); a rolled-back transaction's stream records go too.

* **Update expressions parsed once.** moto parses a request's UpdateExpression twice (to
  validate the names it uses, then to apply it) and every request anew; the parse depends on
  the expression's text alone and its tree is only read (the applying step works on a deep
  copy), so each distinct text is parsed once (the SDK writes ``SET #0 = :0``-shaped
  placeholders: a few hundred shapes in all). Likewise a condition or filter expression, once
  per text, names and values (its parse only reads the item it is evaluated on), including an
  UpdateItem's condition (also inside a transaction).

* **Expression trees copied by pickle.** moto deep-copies each parsed update expression before
  validating it; the tree is plain objects, which a pickle round trip copies in about a third
  of ``copy.deepcopy``'s time (anything it refuses is deep-copied as before). Not items: their
  attribute dict checks the item's size on every key set, which makes unpickling slower.

* **When unsure, walk.** A candidate key that is missing from the table, or whose attributes
  do not match, drops the table's index (rebuilt on the next query) and the query walks. A
  window whose edges do not compare as expected walks the partition. A maintenance step that
  fails drops the index. Other moto versions: not installed (a warning).

Thread safety: moto's DynamoDB is not thread-safe, so ``local.aws`` serialises every
DynamoDB request (reads too) behind one lock; all the hooked writes and queries run inside
those requests (and the on-disk snapshot reads under the same lock). The substitution of
``all_items`` is per thread and per table object, so even a reader outside the lock never
sees it.

``WOD_DYNAMO_INDEX_CHECK=1`` (or ``install(check=True)``) also runs moto's walk for each
query served from the index and compares; a difference is logged, counted in ``stats`` and
the walk's answer returned. The tests use it.
"""
from __future__ import annotations

import bisect
import copy
import inspect
import json
import logging
import os
import pickle
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

log = logging.getLogger("wod.local.dynamo_index")

SUPPORTED_MOTO = ("5.2.5",)
ATTR = "_wod_key_index"  # the per-table index, in moto's Table.__dict__
BIG = "_wod_big_items"  # in Table.__dict__: (install epoch, whether an item may be too big); see below
ITEM_SIZE_MAX = 405000  # moto's LimitedSizeDict bound on an item written by put (dynamo_type.py)
PAGE_SIZE = 1000000  # moto's RESULT_SIZE_LIMIT (table.py), re-read at install
SCALARS = ("S", "N", "B")
ORDERED = ("S", "N")  # the sort key types a window is computed for
ODD = ("?",)  # a value that could not be normalised: always a candidate (moto decides)

stats: Counter = Counter()  # window, cut, partition, table_key, walk, built, dropped, mismatch, rolled_back
mismatches: list[dict] = []  # check mode: what differed (at most 20 kept)

_local = threading.local()
_originals: dict[str, Callable] = {}
_state = {"epoch": 0, "check": False, "transactions": True}
_signatures: dict[str, inspect.Signature] = {}


# -- values ---------------------------------------------------------------------------------

def _norm(value: Any) -> tuple:
    """A DynamoType as a hashable tuple equal exactly when moto's ``==`` is (type, cast value)."""
    if value.type not in SCALARS:
        return ODD
    cast = Decimal(value.value) if value.type == "N" else value.value
    hash(cast)
    return (value.type, cast)


def _raw(type_: str, cast: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({type_: str(cast) if type_ == "N" else cast})


def _item_pk(item: Any) -> tuple:
    pk = _norm(item.hash_key)
    return pk + _norm(item.range_key) if item.range_key is not None else pk


def _lookup(table: Any, pk: tuple) -> Any:
    """The item stored under a primary key tuple, or None (without moto's defaultdict side effect)."""
    from moto.dynamodb.models.dynamo_type import Item

    bucket = table.items.get(_raw(pk[0], pk[1]))
    if table.range_key_attr:
        item = bucket.get(_raw(pk[2], pk[3])) if isinstance(bucket, dict) and len(pk) == 4 else None
    else:
        item = bucket if len(pk) == 2 else None
    return item if isinstance(item, Item) else None


def _table_order(item: Any) -> Any:
    """moto's ``all_items`` sort key."""
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


# -- the index --------------------------------------------------------------------------------

class _HashView:
    """Items having ``attr``, by its value."""

    def __init__(self, attr: str):
        self.attr = attr
        self.parts: dict[tuple, set[tuple]] = {}
        self.rev: dict[tuple, tuple] = {}

    def copy(self) -> _HashView:
        other = _HashView(self.attr)
        other.parts = {value: set(pks) for value, pks in self.parts.items()}
        other.rev = dict(self.rev)
        return other

    def place(self, pk: tuple, item: Any, sort: bool = True) -> None:
        value = item.attrs.get(self.attr) if item is not None else None
        if value is None:
            new = None
        else:
            try:
                new = _norm(value)
            except Exception:
                new = ODD
        old = self.rev.get(pk)
        if old == new:
            return
        if old is not None:
            pks = self.parts[old]
            pks.discard(pk)
            if not pks:
                del self.parts[old]
            del self.rev[pk]
        if new is not None:
            self.parts.setdefault(new, set()).add(pk)
            self.rev[pk] = new



class _Part:
    """One partition of a (hash, sort) view: entries ``(sort value, pk)`` in moto's index order
    (sort key value, then table hash key, then table range key: pk is ``(type, value, ...)``
    and the key types are fixed by the table), all of sort key type ``type``; ``odd``: members
    whose sort value is of another type or could not be normalised (then no window)."""

    __slots__ = ("entries", "type", "odd")

    def __init__(self) -> None:
        self.entries: list[tuple] = []
        self.type: str | None = None
        self.odd: set[tuple] = set()

    def copy(self) -> _Part:
        other = _Part()
        other.entries, other.type, other.odd = list(self.entries), self.type, set(self.odd)
        return other


class _RangeView:
    """Items having both ``hash_attr`` and ``range_attr``, by hash value, sorted as moto's index."""

    def __init__(self, hash_attr: str, range_attr: str):
        self.hash_attr, self.range_attr = hash_attr, range_attr
        self.parts: dict[tuple, _Part] = {}
        self.rev: dict[tuple, tuple] = {}  # pk -> (hash value, (sort type, sort value) | ODD, in entries)
        self.hash_odd: set[tuple] = set()  # members whose hash value could not be normalised

    def copy(self) -> _RangeView:
        other = _RangeView(self.hash_attr, self.range_attr)
        other.parts = {value: part.copy() for value, part in self.parts.items()}
        other.rev = dict(self.rev)
        other.hash_odd = set(self.hash_odd)
        return other

    def place(self, pk: tuple, item: Any, sort: bool = True) -> None:
        """Put ``pk`` where ``item`` (None: absent) belongs. ``sort=False`` while building: the
        entries are appended, and sorted once at the end."""
        new: tuple | None = None
        if item is not None:
            hash_value, range_value = item.attrs.get(self.hash_attr), item.attrs.get(self.range_attr)
            if hash_value is not None and range_value is not None:
                try:
                    hash_norm = _norm(hash_value)
                except Exception:
                    hash_norm = ODD
                try:
                    range_norm = _norm(range_value) if range_value.type in ORDERED else ODD
                except Exception:
                    range_norm = ODD
                new = (hash_norm, range_norm)
        old = self.rev.get(pk)
        if (old[:2] if old is not None else None) == new:
            return
        if old is not None:
            self._remove(pk, *old)
        if new is not None:
            self._add(pk, new[0], new[1], sort)

    def _remove(self, pk: tuple, hash_norm: tuple, range_norm: tuple, in_entries: bool) -> None:
        del self.rev[pk]
        if hash_norm == ODD:
            self.hash_odd.discard(pk)
            return
        part = self.parts[hash_norm]
        if in_entries:
            entry = (range_norm[1], pk)
            at = bisect.bisect_left(part.entries, entry)
            if at >= len(part.entries) or part.entries[at] != entry:
                raise LookupError(f"{pk} missing from its partition")
            del part.entries[at]
            if not part.entries:
                part.type = None
        else:
            part.odd.discard(pk)
        if not part.entries and not part.odd:
            del self.parts[hash_norm]

    def _add(self, pk: tuple, hash_norm: tuple, range_norm: tuple, sort: bool) -> None:
        if hash_norm == ODD:
            self.hash_odd.add(pk)
            self.rev[pk] = (hash_norm, range_norm, False)
            return
        part = self.parts.setdefault(hash_norm, _Part())
        if range_norm != ODD and part.type in (None, range_norm[0]):
            if sort:
                bisect.insort(part.entries, (range_norm[1], pk))
            else:
                part.entries.append((range_norm[1], pk))
            part.type = range_norm[0]
            self.rev[pk] = (hash_norm, range_norm, True)
        else:
            part.odd.add(pk)
            self.rev[pk] = (hash_norm, range_norm, False)


class KeyIndex:
    """The views of one moto Table (built on demand, kept up to date by the write hooks)."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.hash_views: dict[str, _HashView] = {}
        self.range_views: dict[tuple[str, str], _RangeView] = {}

    def __deepcopy__(self, memo: dict) -> KeyIndex:
        """A transaction deep-copies the table to roll back to: copy the containers (their
        contents are immutable tuples), not moto's objects."""
        other = KeyIndex(self.epoch)
        other.hash_views = {attr: view.copy() for attr, view in self.hash_views.items()}
        other.range_views = {attrs: view.copy() for attrs, view in self.range_views.items()}
        return other

    def views(self) -> Iterator[_HashView | _RangeView]:
        yield from self.hash_views.values()
        yield from self.range_views.values()

    def touch(self, table: Any, pk: tuple) -> None:
        item = _lookup(table, pk)
        for view in self.views():
            view.place(pk, item)

    def _build(self, table: Any, view: _HashView | _RangeView) -> None:
        for item in _stored_items(table):
            view.place(_item_pk(item), item, sort=False)
        if isinstance(view, _RangeView):
            for part in view.parts.values():
                part.entries.sort()
        stats["built"] += 1

    def hash_view(self, table: Any, attr: str) -> _HashView:
        view = self.hash_views.get(attr)
        if view is None:
            view = _HashView(attr)
            self._build(table, view)
            self.hash_views[attr] = view
        return view

    def range_view(self, table: Any, hash_attr: str, range_attr: str) -> _RangeView:
        view = self.range_views.get((hash_attr, range_attr))
        if view is None:
            view = _RangeView(hash_attr, range_attr)
            self._build(table, view)
            self.range_views[(hash_attr, range_attr)] = view
        return view


def _stored_items(table: Any) -> Iterator[Any]:
    from moto.dynamodb.models.dynamo_type import Item

    for bucket in table.items.values():
        members = bucket.values() if table.range_key_attr else [bucket]
        for item in members:
            if not isinstance(item, Item):
                raise TypeError(f"unexpected {type(item).__name__} in table {table.name}")
            yield item


def _index_of(table: Any) -> KeyIndex:
    """The table's index, new (empty) if absent or from an earlier install."""
    index = table.__dict__.get(ATTR)
    if index is None or index.epoch != _state["epoch"]:
        index = KeyIndex(_state["epoch"])
        table.__dict__[ATTR] = index
    return index


def _may_hold_big_items(table: Any) -> bool:
    """Whether an item may be larger than ITEM_SIZE_MAX. A put cannot make one (moto checks the
    size as it builds the item), an update can (nested changes are not checked): for a table
    created since install() the update hook keeps the answer in ``table.__dict__[BIG]``;
    for another (created before, restored from a backup, or written while uninstalled) it is
    found once by reading all."""
    epoch, big = table.__dict__.get(BIG, (None, None))
    if epoch != _state["epoch"]:
        big = any(item.size() > ITEM_SIZE_MAX for item in _stored_items(table))
        table.__dict__[BIG] = (_state["epoch"], big)
    return big


def _note_size(table: Any, key: Callable[[], tuple]) -> None:
    """After an update: an item over ITEM_SIZE_MAX makes the table's BIG true for good."""
    if table.__dict__.get(BIG) != (_state["epoch"], False):
        return
    try:
        item = _lookup(table, key())
    except Exception:
        table.__dict__.pop(BIG, None)  # unknown: read all when it matters
        return
    if item is not None and item.size() > ITEM_SIZE_MAX:
        table.__dict__[BIG] = (_state["epoch"], True)


def _drop(table: Any, why: str) -> None:
    if table.__dict__.pop(ATTR, None) is not None:
        stats["dropped"] += 1
        log.warning("key index of %s dropped (%s); the next query rebuilds it", getattr(table, "name", "?"), why)


def _touch(table: Any, pk: Callable[[], tuple]) -> None:
    """After a write to one primary key: move its entries (or drop the index if unsure)."""
    index = table.__dict__.get(ATTR)
    if index is None or index.epoch != _state["epoch"]:
        return
    try:
        index.touch(table, pk())
    except Exception as exc:
        _drop(table, f"{type(exc).__name__}: {exc}")


# -- the query ------------------------------------------------------------------------------

class _Unsure(Exception):
    """The index disagrees with the table: drop it and walk."""


def _plan(table: Any, a: dict) -> tuple[str, list] | None:
    """(how, the items moto's query may walk instead of all of them), or None: walk them all."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    if not a["index_name"]:
        hash_key = a["hash_key"]
        if not isinstance(hash_key, DynamoType):
            return None
        bucket = table.items.get(hash_key)
        if bucket is None:
            return "table_key", []
        members = list(bucket.values()) if table.range_key_attr else [bucket]
        if not all(isinstance(item, Item) for item in members):
            return None
        return "table_key", members
    index = {i.name: i for i in table.all_indexes()}.get(a["index_name"])
    if index is None or (a["consistent_read"] and isinstance(index, GlobalSecondaryIndex)):
        return None  # moto raises
    conditions = dict(a["hash_key_conditions"] or [])
    if not conditions:
        return None
    for value in conditions.values():
        if not isinstance(value, DynamoType) or value.type not in SCALARS:
            return None
    schema = index.schema
    hashes = [k["AttributeName"] for k in schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"]
    index_state = _index_of(table)
    window = _window(table, index_state, a, conditions, hashes, ranges)
    if window is not None:
        return "window", window
    attr, value = next(iter(conditions.items()))
    view = index_state.hash_view(table, attr)
    matching = [_lookup(table, pk) for pk in view.parts.get(_norm(value), ())]
    odd = [_lookup(table, pk) for pk in view.parts.get(ODD, ())]  # moto decides about these
    for item in matching + odd:
        if item is None:
            raise _Unsure("an indexed key is not in the table")
    for item in matching:
        stored = item.attrs.get(attr)
        if stored is None or _norm(stored) != _norm(value):
            raise _Unsure(f"an indexed item's {attr} is not the indexed value")
    return "partition", matching + odd


COMPARISONS = {"=": "EQ", "EQ": "EQ", "<": "LT", "LT": "LT", "<=": "LE", "LE": "LE", ">": "GT", "GT": "GT",
               ">=": "GE", "GE": "GE", "BETWEEN": "BETWEEN", "BEGINS_WITH": "BEGINS_WITH"}


def _window(table: Any, index_state: KeyIndex, a: dict, conditions: dict, hashes: list, ranges: list) -> list | None:
    """The matching run of the partition plus the item after it (moto's reading order), or None."""
    comparison = COMPARISONS.get(str(a["range_comparison"]).upper()) if a["range_comparison"] else None
    range_conditions = a["range_key_conditions"] or []
    limit, start = a["limit"], a["exclusive_start_key"]
    if (comparison is None or len(hashes) != 1 or len(ranges) != 1 or len(conditions) != 1
            or hashes[0] not in conditions or len(range_conditions) > 1
            or (range_conditions and range_conditions[0][0] != ranges[0])
            or a["filter_kwargs"] or _may_hold_big_items(table)
            or not (limit is None or (isinstance(limit, int) and limit >= 1))):
        return None
    hash_attr, range_attr = hashes[0], ranges[0]
    hash_value = conditions[hash_attr]
    bounds = list(a["range_objs"] or [])
    wanted = {"BETWEEN": 2}.get(comparison, 1)
    if len(bounds) != wanted or any(getattr(b, "type", None) not in ORDERED for b in bounds):
        return None
    kind = bounds[0].type
    if any(b.type != kind for b in bounds) or (comparison == "BEGINS_WITH" and kind != "S"):
        return None
    view = index_state.range_view(table, hash_attr, range_attr)
    if view.hash_odd:
        return None
    part = view.parts.get(_norm(hash_value))
    if part is None:
        return []
    if part.odd or part.type != kind:
        return None
    if start is not None and not _start_key_fits(table, start, hash_attr, range_attr, hash_value.type, kind):
        return None
    entries = part.entries
    values = [_norm(b)[1] for b in bounds]
    lo, hi = _bounds(entries, comparison, values)
    raw_op = a["range_comparison"]

    def member(pk: tuple) -> tuple[Any, bool]:
        """The item and whether moto's own comparison matches it (it must be in the partition)."""
        item = _lookup(table, pk)
        stored = item.attrs.get(hash_attr) if item is not None else None
        if stored is None or stored != hash_value or range_attr not in item.attrs:
            raise _Unsure("an indexed item is not in its partition")
        return item, item.attrs[range_attr].compare(raw_op, bounds)

    for at in (lo - 1, hi):
        if 0 <= at < len(entries) and member(entries[at][1])[1]:
            return None
    forward = a["scan_index_forward"] is not False
    first, last = lo, hi
    # from the first page, moto reads ``limit`` matching items and stops on the next one: the
    # rest of the run is never read
    cut = start is None and isinstance(limit, int) and hi - lo > limit + 1
    if cut and isinstance(limit, int):
        first, last = (lo, lo + limit + 1) if forward else (hi - limit - 1, hi)
        stats["cut"] += 1
    window = []
    for _, pk in entries[first:last]:
        item, matches = member(pk)
        if not matches:
            return None  # the run is not what moto matches: walk the partition
        window.append(item)
    if not window:
        return []
    if sum(item.size() for item in window) + ITEM_SIZE_MAX > PAGE_SIZE:
        return None  # a later item could end the page on size
    after = hi if forward else lo - 1
    if not cut and 0 <= after < len(entries):
        window.append(_lookup(table, entries[after][1]))
    return window


def _bounds(entries: list, comparison: str, values: list) -> tuple[int, int]:
    def left(v: Any) -> int:
        return bisect.bisect_left(entries, v, key=lambda e: e[0])

    def right(v: Any) -> int:
        return bisect.bisect_right(entries, v, key=lambda e: e[0])

    n = len(entries)
    if comparison == "EQ":
        return left(values[0]), right(values[0])
    if comparison == "LT":
        return 0, left(values[0])
    if comparison == "LE":
        return 0, right(values[0])
    if comparison == "GT":
        return right(values[0]), n
    if comparison == "GE":
        return left(values[0]), n
    if comparison == "BETWEEN":
        lo = left(values[0])
        return lo, max(lo, right(values[1]))
    lo = hi = left(values[0])  # BEGINS_WITH: strings with a prefix are one run
    while hi < n and entries[hi][0].startswith(values[0]):
        hi += 1
    return lo, hi


def _start_key_fits(table: Any, start: Any, hash_attr: str, range_attr: str, hash_type: str, range_type: str) -> bool:
    """moto compares ExclusiveStartKey with each item on the index and table keys: they must all
    be there, with the types the items have (else moto's answer depends on every item)."""
    if not isinstance(start, dict):
        return False
    expected = {hash_attr: hash_type, range_attr: range_type, table.hash_key_attr: table.hash_key_type}
    if table.range_key_attr:
        expected[table.range_key_attr] = table.range_key_type
    for attr, type_ in expected.items():
        value = start.get(attr)
        if not isinstance(value, dict) or list(value) != [type_]:
            return False
    return True


def _query(self: Any, *args: Any, **kwargs: Any) -> Any:
    original = _originals["Table.query"]
    bound = _signatures["Table.query"].bind(self, *args, **kwargs)
    bound.apply_defaults()
    try:
        plan = _plan(self, bound.arguments)
    except _Unsure as exc:
        _drop(self, str(exc))
        plan = None
    except Exception as exc:
        log.debug("key index not used for %s: %r", self.name, exc)
        plan = None
    if plan is None:
        stats["walk"] += 1
        return original(self, *args, **kwargs)
    how, items = plan
    stats[how] += 1
    items = sorted(items, key=_table_order)
    previous = getattr(_local, "override", None)
    _local.override = (self, items)
    # A count: the items are counted, never returned, so they are neither copied nor projected.
    counting = _local.counting = bool(getattr(_local, "count_only", False))
    try:
        answer = _outcome(original, self, args, kwargs)
    finally:
        _local.override = previous
        _local.counting = False
    if _state["check"]:
        walked = _outcome(original, self, args, kwargs)
        if _comparable(answer, counting) != _comparable(walked, counting):
            stats["mismatch"] += 1
            if len(mismatches) < 20:
                mismatches.append({"table": self.name, "how": how, "args": repr(bound.arguments),
                                   "index": _comparable(answer), "walk": _comparable(walked)})
            log.error("key index answer differs from moto's walk on %s (%s)", self.name, how)
            answer = walked
    if isinstance(answer, BaseException):
        raise answer
    return answer


def _handler_query(self: Any) -> Any:
    """moto's Query handler: note whether the request wants its count only (``Select=COUNT``, no
    filter, no projection), so the table's query need not copy or project what it only counts."""
    body = self.body if isinstance(self.body, dict) else {}
    _local.count_only = body.get("Select") == "COUNT" and not any(
        body.get(key) for key in ("FilterExpression", "QueryFilter", "ProjectionExpression", "AttributesToGet"))
    try:
        return _originals["DynamoHandler.query"](self)
    finally:
        _local.count_only = False


def _project(self: Any, item: Any) -> Any:
    """An index's projection of an item, unless the item is only counted."""
    if getattr(_local, "counting", False):
        return item
    return _originals["SecondaryIndex.project"](self, item)


def _outcome(original: Callable, table: Any, args: tuple, kwargs: dict) -> Any:
    if not _state["check"]:
        return original(table, *args, **kwargs)
    try:
        return original(table, *args, **kwargs)
    except Exception as exc:
        return exc


def _comparable(answer: Any, counting: bool = False) -> Any:
    if isinstance(answer, BaseException):
        return (type(answer).__name__, str(answer))
    items, scanned, last = answer
    if counting:
        return (len(items), scanned, {k: v.to_json() for k, v in last.items()} if last else last)
    return ([item.to_json() for item in items], scanned,
            {k: v.to_json() for k, v in last.items()} if last else last)


def _all_items(self: Any) -> Any:
    override = getattr(_local, "override", None)
    if override is not None and override[0] is self:
        return list(override[1])
    return _originals["Table.all_items"](self)


# -- the write hooks ---------------------------------------------------------------------------

def _put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    _before_write(self, lambda: _put_key(self, args, kwargs, typed=True))
    try:
        return _originals["Table.put_item"](self, *args, **kwargs)
    finally:
        _touch(self, lambda: _put_key(self, args, kwargs))


def _put_key(table: Any, args: tuple, kwargs: dict, typed: bool = False) -> tuple:
    """The primary key ``Table.put_item`` writes (as moto derives it), normalised or as DynamoTypes."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    attrs = _signatures["Table.put_item"].bind(table, *args, **kwargs).arguments["item_attrs"]
    key: tuple = (DynamoType(attrs[table.hash_key_attr]),)
    if table.range_key_attr is not None:
        key += (DynamoType(attrs[table.range_key_attr]),)
    return key if typed else _typed_to_pk(key)


def _typed_to_pk(key: tuple) -> tuple:
    return _norm(key[0]) + (_norm(key[1]) if len(key) > 1 else ())


def _delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    _before_write(self, lambda: _delete_key(self, args, kwargs, typed=True))
    try:
        return _originals["Table.delete_item"](self, *args, **kwargs)
    finally:
        _touch(self, lambda: _delete_key(self, args, kwargs))


def _delete_key(table: Any, args: tuple, kwargs: dict, typed: bool = False) -> tuple:
    arguments = _signatures["Table.delete_item"].bind(table, *args, **kwargs).arguments
    hash_key, range_key = arguments["hash_key"], arguments["range_key"]
    if table.range_key_attr and not range_key:
        raise LookupError("a whole hash key's items were deleted")
    key = (hash_key, range_key) if range_key else (hash_key,)
    return key if typed else _typed_to_pk(key)


def _update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    try:  # if this fails, so does the call, before it writes anything
        arguments = _signatures["DynamoDBBackend.update_item"].bind(self, *args, **kwargs).arguments
        table = self.tables.get(arguments["table_name"])
    except Exception:
        table = None
    if table is not None:
        _before_write(table, lambda: _update_key(table, arguments["key"], typed=True))
    try:
        return _originals["DynamoDBBackend.update_item"](self, *args, **kwargs)
    finally:
        if table is not None:
            _touch(table, lambda: _update_key(table, arguments["key"]))
            _note_size(table, lambda: _update_key(table, arguments["key"]))


def _update_key(table: Any, key: Any, typed: bool = False) -> tuple:
    """The primary key, derived as ``DynamoDBBackend.update_item`` derives it."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if table.hash_key_attr in key and table.range_key_attr in key:
        typed_key: tuple = (DynamoType(key[table.hash_key_attr]), DynamoType(key[table.range_key_attr]))
    elif table.hash_key_attr in key:
        if table.range_key_attr:
            raise LookupError("no range key")  # moto refuses it before writing (get_item)
        typed_key = (DynamoType(key[table.hash_key_attr]),)
    else:
        raise LookupError("key without the hash key")
    return typed_key if typed else _typed_to_pk(typed_key)


def _init_table(self: Any, *args: Any, **kwargs: Any) -> None:
    from moto.dynamodb.models.table import Table

    _originals["Table.__init__"](self, *args, **kwargs)
    if type(self) is Table and not self.items:  # not a restored table: every write seen from here on
        self.__dict__[BIG] = (_state["epoch"], False)


# -- transactions ------------------------------------------------------------------------------
#
# moto's TransactWriteItems deep-copies every table it names before the first write
# (``copy.deepcopy(self.tables[name])``: the whole table, O(table) per transaction, seconds
# at 50 000 items) and, if any operation fails, puts those copies back in ``self.tables``. With
# ``install(transactions=True)`` that copy is a ``_Snapshot`` standing for the live table, and
# the write hooks journal each key's item (a deep copy) before its first write in the
# transaction. If moto rolls back (puts the snapshots back), the live tables return to their
# place with every journaled key restored - the state moto's copies held - and the index is
# moved with them. A key the hooks cannot derive makes that table copied whole, as moto does.

class _Snapshot:
    """Stands for moto's deep copy of ``table`` during one transaction."""

    __slots__ = ("table",)

    def __init__(self, table: Any):
        self.table = table


class _Journal:
    def __init__(self) -> None:
        self.old: dict[tuple, tuple] = {}  # (id(table), pk) -> (table, typed key, deep copy of the item or None)
        self.whole: dict[int, tuple] = {}  # id(table) -> (table, deep copy of table.items)
        self.streams: dict[int, tuple] = {}  # id(table) -> (its stream shard, how many records it had)

    def record(self, table: Any, key: Callable[[], tuple]) -> None:
        import copy

        shard = getattr(table, "stream_shard", None)
        if shard is not None and id(table) not in self.streams:
            self.streams[id(table)] = (shard, len(shard.items))
        if id(table) in self.whole:
            return
        try:
            typed = key()
            types = (table.hash_key_type, table.range_key_type)[:len(typed)]
            if len(typed) != (2 if table.range_key_attr else 1) or any(
                    k.type != t for k, t in zip(typed, types, strict=True)):
                return  # moto refuses a key of another shape or type before writing
            pk = (id(table), *_typed_to_pk(typed))
        except Exception:
            self.whole[id(table)] = (table, copy.deepcopy(table.items))
            return
        if pk not in self.old:
            item = _lookup(table, pk[1:])
            self.old[pk] = (table, typed, copy.deepcopy(item) if item is not None else None)

    def roll_back(self) -> None:
        """Every journaled table as it was when the transaction began (see above), its stream too."""
        for shard, length in self.streams.values():
            del shard.items[length:]  # the records of writes that did not happen
        for table, items in self.whole.values():
            table.items = items
            _drop(table, "a transaction rolled back a key the index could not follow")
        for table, typed, item in self.old.values():
            if table.range_key_attr:
                bucket = table.items[typed[0]]
                if item is None:
                    bucket.pop(typed[1], None)
                else:
                    bucket[item.range_key] = item
            elif item is None:
                table.items.pop(typed[0], None)
            else:
                table.items[item.hash_key] = item
            _touch(table, partial(_typed_to_pk, typed))


def _before_write(table: Any, key: Callable[[], tuple]) -> None:
    journal = getattr(_local, "journal", None)
    if journal is not None:
        journal.record(table, key)


def _transact_write_items(self: Any, *args: Any, **kwargs: Any) -> Any:
    original = _originals["DynamoDBBackend.transact_write_items"]
    items = _signatures["DynamoDBBackend.transact_write_items"].bind(self, *args, **kwargs).arguments["transact_items"]
    try:
        names = {next(iter(item.values())).get("TableName") for item in items}
        unknown = any(name not in self.tables for name in names)
    except Exception:
        unknown = True  # moto raises on such a request; let it
    if not _state["transactions"] or unknown or getattr(_local, "journal", None) is not None:
        return original(self, *args, **kwargs)
    journal = _Journal()
    _local.journal = journal
    try:
        return original(self, *args, **kwargs)
    finally:
        _local.journal = None
        snapshots = {name: table for name, table in self.tables.items() if isinstance(table, _Snapshot)}
        for name, snapshot in snapshots.items():
            self.tables[name] = snapshot.table
        if snapshots:
            stats["rolled_back"] += 1
            journal.roll_back()


class _CopyModule:
    """``copy`` as moto's DynamoDB backend module sees it: a table's deep copy during a journaled
    transaction is a ``_Snapshot``; everything else is the real ``copy``."""

    def __init__(self, real: Any):
        self._real = real

    def deepcopy(self, x: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(x, Table) and getattr(_local, "journal", None) is not None:
            return _Snapshot(x)
        if getattr(_local, "counting", False):
            return x  # a Query's results that are only counted
        return self._real.deepcopy(x, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _deep_copy(x: Any, memo: Any = None, _nil: Any = None) -> Any:
    """``copy.deepcopy(x)`` for moto's update-expression validation; a parsed expression (a tree
    of plain objects: no ``__deepcopy__``, no ``__reduce__``) by a pickle round trip, in about a
    third of the time. Anything else, or anything pickle refuses, is deep-copied."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if memo is None and isinstance(x, Node):  # not values: DynamoType has a fast __deepcopy__ of its own
        try:
            return pickle.loads(pickle.dumps(x, pickle.HIGHEST_PROTOCOL))
        except Exception:  # not picklable: copied the usual way
            pass
    return copy.deepcopy(x, memo)


class _ConditionParser:
    """What ``create_condition_expression_parser`` gives ``update_item``: its parse, made once."""

    def __init__(self, expr: str | None, names: dict | None, values: dict | None):
        self.args = (expr, names, values)

    def parse(self) -> Any:
        return _filter_expression(*self.args)


# -- install ------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _parsed_update(expression_str: str) -> Any:
    return _originals["UpdateExpressionParser.make"](expression_str)


def _make_update(expression_str: str) -> Any:
    return _parsed_update(expression_str)


@lru_cache(maxsize=4096)
def _parsed_condition(expr: str | None, names: tuple | None, values: str | None) -> Any:
    return _originals["models.get_filter_expression"](
        expr, None if names is None else dict(names), None if values is None else json.loads(values))


def _filter_expression(expr: str | None, names: dict | None, values: dict | None) -> Any:
    """moto's parse of a condition or filter expression, once per expression, names and values:
    the parsed expression only reads the item it is given."""
    try:
        key = (expr, None if names is None else tuple(sorted(names.items())),
               None if values is None else json.dumps(values, sort_keys=True))
    except (TypeError, ValueError):
        return _originals["models.get_filter_expression"](expr, names, values)
    return _parsed_condition(*key)


def _targets() -> dict[str, tuple[Any, str, Callable]]:
    from moto.dynamodb import models as models_module
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.table import SecondaryIndex, Table
    from moto.dynamodb.parsing import validators as validators_module
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.responses import DynamoHandler

    return {"DynamoHandler.query": (DynamoHandler, "query", _handler_query),
            "SecondaryIndex.project": (SecondaryIndex, "project", _project),
            "Table.__init__": (Table, "__init__", _init_table),
            "Table.query": (Table, "query", _query), "Table.all_items": (Table, "all_items", _all_items),
            "Table.put_item": (Table, "put_item", _put_item), "Table.delete_item": (Table, "delete_item", _delete_item),
            "DynamoDBBackend.update_item": (DynamoDBBackend, "update_item", _update_item),
            "DynamoDBBackend.transact_write_items": (DynamoDBBackend, "transact_write_items", _transact_write_items),
            "UpdateExpressionParser.make": (UpdateExpressionParser, "make", _make_update),
            "models.get_filter_expression": (models_module, "get_filter_expression", _filter_expression),
            "models.create_condition_expression_parser": (models_module, "create_condition_expression_parser",
                                                          _ConditionParser),
            "table.get_filter_expression": (table_module, "get_filter_expression", _filter_expression),
            "validators.deepcopy": (validators_module, "deepcopy", _deep_copy)}


EXPECTED_PARAMETERS = {
    "DynamoHandler.query": ["self"],
    "SecondaryIndex.project": ["self", "item"],
    "Table.__init__": ["self", "table_name", "account_id", "region", "schema", "attr", "throughput", "billing_mode",
                       "indexes", "global_indexes", "streams", "sse_specification", "tags",
                       "deletion_protection_enabled", "warm_throughput"],
    "Table.query": ["self", "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key",
                    "scan_index_forward", "projection_expressions", "index_name", "consistent_read",
                    "filter_expression", "hash_key_conditions", "range_key_conditions", "filter_kwargs"],
    "Table.all_items": ["self"],
    "Table.put_item": ["self", "item_attrs", "expected", "condition_expression", "expression_attribute_names",
                       "expression_attribute_values", "overwrite", "return_values_on_condition_check_failure"],
    "Table.delete_item": ["self", "hash_key", "range_key"],
    "DynamoDBBackend.update_item": ["self", "table_name", "key", "update_expression", "expression_attribute_names",
                                    "expression_attribute_values", "attribute_updates", "expected",
                                    "condition_expression", "return_values_on_condition_check_failure"],
    "DynamoDBBackend.transact_write_items": ["self", "transact_items"],
    "models.get_filter_expression": ["expr", "names", "values"],
    "table.get_filter_expression": ["expr", "names", "values"],
    "UpdateExpressionParser.make": ["expression_str"],
    "models.create_condition_expression_parser": ["expr", "names", "values"],
    "validators.deepcopy": ["x", "memo", "_nil"],
}


def install(check: bool | None = None, transactions: bool = True) -> bool:
    """Serve moto's DynamoDB queries from the key index, and (``transactions``) roll transactions
    back from a journal instead of whole-table copies; process-wide, idempotent. Call once in
    the process that runs the embedded AWS, before it serves. Returns False (and logs why) if
    this moto is not one the index was written against; moto then works as before."""
    import copy

    import moto
    from moto.dynamodb import models as models_module
    from moto.dynamodb.models import table as table_module

    global PAGE_SIZE
    _state["check"] = (os.environ.get("WOD_DYNAMO_INDEX_CHECK") == "1") if check is None else check
    _state["transactions"] = transactions
    if _originals:
        return True
    if moto.__version__ not in SUPPORTED_MOTO:
        log.warning("moto %s: key index not installed (written against %s); index queries walk the table",
                    moto.__version__, ", ".join(SUPPORTED_MOTO))
        return False
    targets = _targets()
    for name, (owner, attr, _) in targets.items():
        parameters = list(inspect.signature(getattr(owner, attr)).parameters)
        if parameters != EXPECTED_PARAMETERS[name]:
            log.warning("moto's %s changed (%s): key index not installed", name, parameters)
            return False
    if models_module.copy is not copy or table_module.copy is not copy:
        log.warning("moto's DynamoDB backend does not use the copy module as expected: key index not installed")
        return False
    PAGE_SIZE = table_module.RESULT_SIZE_LIMIT
    models_module.copy = _CopyModule(copy)  # type: ignore[assignment]
    table_module.copy = _CopyModule(copy)  # type: ignore[assignment]
    _state["epoch"] += 1
    for name, (owner, attr, replacement) in targets.items():
        _originals[name] = getattr(owner, attr)
        _signatures[name] = inspect.signature(_originals[name])
        setattr(owner, attr, replacement)
    log.info("key index installed on moto %s's DynamoDB", moto.__version__)
    return True


def uninstall() -> None:
    """moto's own methods back (tests); the tables' indexes are forgotten."""
    import copy

    from moto.dynamodb import models as models_module
    from moto.dynamodb.models import table as table_module

    targets = _targets()
    for name, original in list(_originals.items()):
        owner, attr, _ = targets[name]
        setattr(owner, attr, original)
    _originals.clear()
    _parsed_update.cache_clear()
    _parsed_condition.cache_clear()
    models_module.copy = copy
    table_module.copy = copy
    _state["epoch"] += 1


def installed() -> bool:
    return bool(_originals)


__all__ = ["install", "installed", "mismatches", "stats", "uninstall"]
