"""local.dynamo_index: the embedded DynamoDB answers index queries exactly as moto's walk does.

Each generated history of writes (puts, conditional updates that change index attributes in
place, deletes, batch writes, transactions that commit or roll back, table deletion, TTL) and
queries (every key condition, Limit, both directions, pagination, projections, filters, the
legacy KeyConditions) runs twice on the embedded AWS over HTTP: moto as it is, then with
``install()`` (from a random point of the history on, in check mode: every query served from
the index is also walked and compared). Every answer must be the same.
"""
from __future__ import annotations

import random
import threading
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local import dynamo_index

S, N = "S", "N"
PHASES = ["a", "b", "c"]
DUES = ["00", "01", "02", "03", "04", "05"]
NUMS = ["1", "1.0", "2", "10", "1E+1", "-3", "0.5"]
IDS = [f"k{i:02d}" for i in range(16)]
PKS = ["p0", "p1", "p2"]
SKS = ["1", "1.0", "2", "3", "10"]


def _client(aws):
    return boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))


def _tables(prefix: str) -> list[dict]:
    def attrs(**types):
        return [{"AttributeName": name, "AttributeType": t} for name, t in types.items()]

    def key(hash_, range_=None):
        return [{"AttributeName": hash_, "KeyType": "HASH"}] + (
            [{"AttributeName": range_, "KeyType": "RANGE"}] if range_ else [])

    return [
        {"TableName": f"{prefix}-a", "BillingMode": "PAY_PER_REQUEST", "KeySchema": key("id"),
         "AttributeDefinitions": attrs(id=S, ph=S, du=S, grp=S, num=N),
         "GlobalSecondaryIndexes": [
             {"IndexName": "due", "KeySchema": key("ph", "du"), "Projection": {"ProjectionType": "KEYS_ONLY"}},
             {"IndexName": "phase", "KeySchema": key("ph"), "Projection": {"ProjectionType": "ALL"}},
             {"IndexName": "grp-num", "KeySchema": key("grp", "num"),
              "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["pay"]}}]},
        {"TableName": f"{prefix}-b", "BillingMode": "PAY_PER_REQUEST", "KeySchema": key("pk", "sk"),
         "AttributeDefinitions": attrs(pk=S, sk=N, ph=S, du=S, num=N),
         "GlobalSecondaryIndexes": [
             {"IndexName": "state-num", "KeySchema": key("ph", "num"), "Projection": {"ProjectionType": "ALL"}},
             {"IndexName": "state", "KeySchema": key("ph"), "Projection": {"ProjectionType": "KEYS_ONLY"}}],
         "LocalSecondaryIndexes": [
             {"IndexName": "by-du", "KeySchema": key("pk", "du"), "Projection": {"ProjectionType": "KEYS_ONLY"}}]},
    ]


# -- generated histories ----------------------------------------------------------------------

POOLS = {"ph": PHASES, "du": DUES, "grp": ["x", "y"], "num": NUMS}
ATTRS = {"ph": S, "du": S, "grp": S, "num": N}


@st.composite
def _key(draw, table: str):
    if table == "a":
        return {"id": {S: draw(st.sampled_from(IDS))}}
    return {"pk": {S: draw(st.sampled_from(PKS))}, "sk": {N: draw(st.sampled_from(SKS))}}


@st.composite
def _attributes(draw, table: str):
    """Mostly every index attribute, of its own type; now and then another type (moto does not check)."""
    attrs = {}
    for name, kind in ATTRS.items():
        if (table == "b" and name == "grp") or not draw(st.integers(0, 3)):
            continue
        if draw(st.integers(0, 39)):
            attrs[name] = {kind: draw(st.sampled_from(POOLS[name]))}
        else:
            attrs[name] = draw(st.sampled_from([{N: "3"} if kind == S else {S: "3"}, {"BOOL": True},
                                                {"M": {"ph": {S: "a"}}}, {"NULL": True}]))
    if draw(st.booleans()):
        attrs["pay"] = {S: "x" * draw(st.integers(1, 40))}
    return attrs


@st.composite
def _write(draw):
    table = draw(st.sampled_from("ab"))
    kind = draw(st.sampled_from(["put"] * 4 + ["update"] * 4 + ["add", "delete", "delete", "batch", "batch"]
                                + ["transact"] * 3 + ["recreate", "ttl"] * (draw(st.integers(0, 9)) == 0)))
    if kind == "put":
        return ("put", table, draw(_key(table)), draw(_attributes(table)),
                draw(st.sampled_from([None, None, None, "new", "ph"])))
    if kind == "update":
        sets = draw(_attributes(table))
        removes = draw(st.lists(st.sampled_from([n for n in ATTRS if n not in sets] + ["pay"]), unique=True,
                                max_size=2))
        return ("update", table, draw(_key(table)), sets, removes,
                draw(st.sampled_from([None, None, "exists", "ph"])))
    if kind == "add":
        return ("add", table, draw(_key(table)), draw(st.sampled_from(["1", "-1", "9"])))
    if kind == "delete":
        return ("delete", table, draw(_key(table)), draw(st.sampled_from([None, "ph"])))
    if kind == "batch":
        puts = draw(st.lists(st.tuples(_key(table), _attributes(table)), max_size=8,
                             unique_by=lambda p: repr(sorted(p[0].items()))))
        deletes = draw(st.lists(_key(table), max_size=3, unique_by=lambda k: repr(sorted(k.items()))))
        return ("batch", table, puts, deletes)
    if kind == "transact":
        ops = []
        for _ in range(draw(st.integers(1, 4))):
            t = draw(st.sampled_from("ab"))
            op = draw(st.sampled_from(["put", "update", "delete", "check"]))
            ops.append((op, t, draw(_key(t)), draw(_attributes(t)),
                        draw(st.sampled_from([None, None, None, None, "ph", "exists"]))))
        return ("transact", ops)
    return (kind, table)


@st.composite
def _read(draw):
    table = draw(st.sampled_from("ab"))
    if draw(st.booleans()):
        return ("get", table, draw(_key(table)))
    return ("scan", table)


@st.composite
def _query(draw):
    shape = draw(st.sampled_from(["a:due", "a:due", "a:phase", "a:grp-num", "b:", "b:state-num", "b:state",
                                  "b:by-du"]))
    table, index = shape.split(":")
    hash_attr, range_attr, range_kind = {
        "a:due": ("ph", "du", S), "a:phase": ("ph", None, None), "a:grp-num": ("grp", "num", N),
        "b:": ("pk", "sk", N), "b:state-num": ("ph", "num", N), "b:state": ("ph", None, None),
        "b:by-du": ("pk", "du", S)}[shape]
    hash_pool = {"ph": PHASES, "grp": ["x", "y"], "pk": PKS}[hash_attr]
    hash_value = {S: draw(st.sampled_from(hash_pool))}
    condition = None
    if range_attr and draw(st.integers(0, 3)):
        op = draw(st.sampled_from(["=", "<", "<=", ">", ">=", "BETWEEN", "begins_with"]))
        pool = DUES + ["0", "1"] if range_kind == S else NUMS + SKS
        values = [draw(st.sampled_from(pool)) for _ in range(2)]
        if op == "BETWEEN" and draw(st.booleans()):
            values.sort(key=float if range_kind == N else str)
        kind = range_kind if draw(st.integers(0, 14)) else (N if range_kind == S else S)
        if op == "begins_with" and kind == N:
            op = "="
        condition = (op, [{kind: v if kind == range_kind or kind == S else "3"} for v in values])
    return {
        "table": table, "index": index or None, "hash": (hash_attr, hash_value), "range": (range_attr, condition),
        "limit": draw(st.sampled_from([None, None, 1, 2, 3, 5])), "forward": draw(st.booleans()),
        "projection": draw(st.sampled_from([None, None, "ph", "pay"])),
        "filter": draw(st.sampled_from([None, None, "exists-pay", "num-pos"])),
        "legacy": draw(st.integers(0, 9)) == 0, "count": draw(st.integers(0, 9)) == 0,
    }


# -- running a history -----------------------------------------------------------------------------

class History:
    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def name(self, table: str) -> str:
        return f"{self.prefix}-{table}"

    def create(self, table: str | None = None) -> None:
        for spec in _tables(self.prefix):
            if table is None or spec["TableName"] == self.name(table):
                self.client.create_table(**spec)

    def drop(self) -> None:
        for spec in _tables(self.prefix):
            try:
                self.client.delete_table(TableName=spec["TableName"])
            except ClientError:
                pass

    def call(self, method: str, **kwargs):
        try:
            answer = getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return ("error", status, error.get("Code"), error.get("Message") if status and status < 500 else "")
        answer.pop("ResponseMetadata", None)
        answer.pop("ConsumedCapacity", None)
        return ("ok", answer)

    def write(self, op: tuple):
        kind = op[0]
        if kind == "put":
            _, table, key, attrs, condition = op
            kwargs: dict = {"TableName": self.name(table), "Item": {**attrs, **key}, "ReturnValues": "ALL_OLD"}
            kwargs.update(_condition(condition, key))
            return self.call("put_item", **kwargs)
        if kind == "update":
            _, table, key, sets, removes, condition = op
            names, values, clauses = {}, {}, []
            if sets:
                clauses.append("SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(sets))))
                for i, (name, value) in enumerate(sets.items()):
                    names[f"#s{i}"], values[f":s{i}"] = name, value
            if removes:
                clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes))))
                names.update({f"#r{i}": name for i, name in enumerate(removes)})
            if not clauses:
                clauses, names, values = ["SET #s0 = :s0"], {"#s0": "pay"}, {":s0": {S: "u"}}
            kwargs = {"TableName": self.name(table), "Key": key, "UpdateExpression": " ".join(clauses),
                      "ExpressionAttributeNames": names, "ReturnValues": "ALL_NEW"}
            if values:
                kwargs["ExpressionAttributeValues"] = values
            _merge(kwargs, _condition(condition, key))
            return self.call("update_item", **kwargs)
        if kind == "add":
            _, table, key, amount = op
            return self.call("update_item", TableName=self.name(table), Key=key, UpdateExpression="ADD #n :n",
                             ExpressionAttributeNames={"#n": "num"}, ExpressionAttributeValues={":n": {N: amount}},
                             ReturnValues="UPDATED_NEW")
        if kind == "delete":
            _, table, key, condition = op
            kwargs = {"TableName": self.name(table), "Key": key, "ReturnValues": "ALL_OLD"}
            kwargs.update(_condition(condition, key))
            return self.call("delete_item", **kwargs)
        if kind == "batch":
            _, table, puts, deletes = op
            requests = [{"PutRequest": {"Item": {**attrs, **key}}} for key, attrs in puts]
            requests += [{"DeleteRequest": {"Key": key}} for key in deletes]
            if not requests:
                return ("noop",)
            return self.call("batch_write_item", RequestItems={self.name(table): requests})
        if kind == "transact":
            items, seen = [], set()
            for kind_, table, key, attrs, condition in op[1]:
                if (table, repr(sorted(key.items()))) in seen:
                    continue
                seen.add((table, repr(sorted(key.items()))))
                base = {"TableName": self.name(table), **_condition(condition, key)}
                if kind_ == "put":
                    items.append({"Put": {**base, "Item": {**attrs, **key}}})
                elif kind_ == "update":
                    names = {f"#s{i}": n for i, n in enumerate(attrs)} or {"#s0": "pay"}
                    values = {f":s{i}": v for i, v in enumerate(attrs.values())} or {":s0": {S: "t"}}
                    update = {**base, "Key": key, "UpdateExpression": "SET " + ", ".join(
                        f"#s{i} = :s{i}" for i in range(len(names)))}
                    _merge(update, {"ExpressionAttributeNames": names, "ExpressionAttributeValues": values})
                    items.append({"Update": update})
                elif kind_ == "delete":
                    items.append({"Delete": {**base, "Key": key}})
                else:
                    check = {**base, "Key": key}
                    if "ConditionExpression" not in check:
                        _merge(check, _condition("exists", key))
                    items.append({"ConditionCheck": check})
            return self.call("transact_write_items", TransactItems=items)
        if kind == "recreate":
            _, table = op
            self.client.delete_table(TableName=self.name(table))
            self.create(table)
            return ("recreated",)
        if kind == "nested":
            _, table, key, name, size = op
            return self.call("update_item", TableName=self.name(table), Key=key, UpdateExpression="SET #m.#k = :v",
                             ExpressionAttributeNames={"#m": "m", "#k": name},
                             ExpressionAttributeValues={":v": {S: "n" * size}})
        if kind == "get":
            _, table, key = op
            return self.call("get_item", TableName=self.name(table), Key=key, ConsistentRead=True)
        if kind == "scan":
            return self.scan(op[1])
        if kind == "ttl":
            _, table = op
            return self.call("update_time_to_live", TableName=self.name(table),
                             TimeToLiveSpecification={"Enabled": True, "AttributeName": "pay"})
        raise AssertionError(op)

    def scan(self, table: str):
        pages, kwargs = [], {"TableName": self.name(table), "ConsistentRead": True}
        for _ in range(40):
            page = self.call("scan", **kwargs)
            pages.append(page)
            if page[0] != "ok" or "LastEvaluatedKey" not in page[1]:
                break
            kwargs["ExclusiveStartKey"] = page[1]["LastEvaluatedKey"]
        return pages

    def query(self, q: dict):
        names = {"#h": q["hash"][0]}
        values = {":h": q["hash"][1]}
        kwargs: dict = {"TableName": self.name(q["table"]), "ScanIndexForward": q["forward"]}
        if q["index"]:
            kwargs["IndexName"] = q["index"]
        range_attr, condition = q["range"]
        if q["legacy"]:
            conditions = {q["hash"][0]: {"ComparisonOperator": "EQ", "AttributeValueList": [q["hash"][1]]}}
            if condition:
                op, bounds = condition
                legacy = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE", "BETWEEN": "BETWEEN",
                          "begins_with": "BEGINS_WITH"}[op]
                conditions[range_attr] = {"ComparisonOperator": legacy,
                                          "AttributeValueList": bounds[:2 if op == "BETWEEN" else 1]}
            kwargs["KeyConditions"] = conditions
            names, values = {}, {}
        else:
            expression = "#h = :h"
            if condition:
                op, bounds = condition
                names["#r"] = range_attr
                values[":r0"] = bounds[0]
                if op == "BETWEEN":
                    values[":r1"] = bounds[1]
                    expression += " AND #r BETWEEN :r0 AND :r1"
                elif op == "begins_with":
                    expression += " AND begins_with(#r, :r0)"
                else:
                    expression += f" AND #r {op} :r0"
            kwargs["KeyConditionExpression"] = expression
        if q["projection"] and not q["count"]:
            names["#p"] = q["projection"]
            kwargs["ProjectionExpression"] = "#p"
        if q["filter"] == "exists-pay":
            names["#f"] = "pay"
            kwargs["FilterExpression"] = "attribute_exists(#f)"
        elif q["filter"] == "num-pos":
            names["#f"], values[":f"] = "num", {N: "0"}
            kwargs["FilterExpression"] = "#f > :f"
        if q["count"]:
            kwargs["Select"] = "COUNT"
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if q["limit"]:
            kwargs["Limit"] = q["limit"]
        pages = []
        for _ in range(40):
            page = self.call("query", **kwargs)
            pages.append(page)
            if page[0] != "ok" or "LastEvaluatedKey" not in page[1]:
                break
            kwargs["ExclusiveStartKey"] = page[1]["LastEvaluatedKey"]
        return pages

    def run(self, steps: list, install_at: int | None, journal: bool = True) -> list:
        """Every step's answer, then both tables' whole content."""
        self.create()
        outcomes = []
        try:
            for n, (kind, step) in enumerate(steps):
                if n == install_at:
                    dynamo_index.install(check=True, transactions=journal)
                outcomes.append(self.query(step) if kind == "q" else self.write(step))
            outcomes += [self.scan("a"), self.scan("b")]
        finally:
            self.drop()
        return outcomes


def _condition(condition: str | None, key: dict) -> dict:
    first = next(iter(key))
    if condition == "new":
        return {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": first}}
    if condition == "exists":
        return {"ConditionExpression": "attribute_exists(#k)", "ExpressionAttributeNames": {"#k": first}}
    if condition == "ph":
        return {"ConditionExpression": "#c = :c", "ExpressionAttributeNames": {"#c": "ph"},
                "ExpressionAttributeValues": {":c": {S: "a"}}}
    return {}


def _merge(kwargs: dict, extra: dict) -> None:
    for name, value in extra.items():
        if isinstance(value, dict):
            kwargs.setdefault(name, {}).update(value)
        else:
            kwargs[name] = value


@pytest.fixture
def walk_only():
    """moto without the index for the test's start; the index as it was afterwards."""
    was = dynamo_index.installed()
    dynamo_index.uninstall()
    yield
    dynamo_index.uninstall()
    if was:
        dynamo_index.install(check=False)


def _seed(table: str):
    return st.lists(st.tuples(_key(table), _attributes(table)), min_size=4, max_size=14,
                    unique_by=lambda p: repr(sorted(p[0].items())))


history = st.tuples(_seed("a"), _seed("b"), st.lists(
    st.one_of(st.tuples(st.just("w"), _write()), st.tuples(st.just("w"), _write()), st.tuples(st.just("q"), _query()),
              st.tuples(st.just("w"), _read())),
    min_size=10, max_size=60)).map(lambda t: [("w", ("batch", "a", t[0], [])), ("w", ("batch", "b", t[1], []))] + t[2])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=history, install_at=st.integers(0, 30), journal=st.booleans())
def test_same_answers_as_moto_walk(embedded_aws, walk_only, steps, install_at, journal):
    client = _client(embedded_aws)
    prefix = f"x{uuid.uuid4().hex[:8]}"
    dynamo_index.uninstall()
    walked = History(client, prefix).run(steps, install_at=None)
    before = dict(dynamo_index.stats)
    try:
        indexed = History(client, prefix).run(steps, install_at=min(install_at, len(steps) - 1), journal=journal)
    finally:
        dynamo_index.uninstall()
    assert dynamo_index.mismatches == []
    assert dynamo_index.stats["dropped"] == before.get("dropped", 0)
    assert indexed == walked


def _due_query(client, table: str) -> dict:
    return client.query(TableName=table, IndexName="due", KeyConditionExpression="#h = :h AND #r <= :r",
                        ExpressionAttributeNames={"#h": "ph", "#r": "du"},
                        ExpressionAttributeValues={":h": {S: "a"}, ":r": {S: "01"}}, Limit=100)


def test_deterministic_edges(embedded_aws, walk_only):
    """Limit equal to the matches (the page still ends on the next item), reversed pages through
    ExclusiveStartKey, a page cut at 1 MB, in-place updates moving items across partitions and
    a rolled-back transaction: same answers, served from the index."""
    client = _client(embedded_aws)
    prefix = f"e{uuid.uuid4().hex[:8]}"
    steps: list = []
    for n in range(30):
        steps.append(("w", ("put", "a", {"id": {S: f"k{n:02d}"}},
                            {"ph": {S: "a"}, "du": {S: DUES[n % 6]}, "grp": {S: "x"}, "num": {N: str(n)},
                             "pay": {S: "z" * (190000 if n % 5 == 0 else 10)}}, None)))
    base = {"table": "a", "index": "due", "hash": ("ph", {S: "a"}), "projection": None, "filter": None,
            "legacy": False, "count": False}
    for op, bounds in [("<=", ["05"]), (">=", ["00"]), ("<=", ["01"]), ("=", ["03"]), (">", ["03"]),
                       ("BETWEEN", ["01", "02"]), ("begins_with", ["0"]), ("<", ["00"])]:
        for limit in (None, 1, 5, 10):
            for forward in (True, False):
                steps.append(("q", {**base, "range": ("du", (op, [{S: b} for b in bounds])), "limit": limit,
                                    "forward": forward}))
    steps.append(("w", ("update", "a", {"id": {S: "k01"}}, {"ph": {S: "b"}}, [], None)))
    steps.append(("w", ("update", "a", {"id": {S: "k02"}}, {}, ["du"], None)))
    steps.append(("w", ("add", "a", {"id": {S: "k03"}}, "9")))
    steps.append(("w", ("transact", [("update", "a", {"id": {S: "k04"}}, {"ph": {S: "c"}}, None),
                                     ("put", "a", {"id": {S: "k05"}}, {"ph": {S: "c"}}, "new")])))
    steps.append(("q", {**base, "range": ("du", ("<=", [{S: "05"}])), "limit": 3, "forward": False}))
    # two matches of 299 kB, a small item, then one of 402 kB: moto ends the page on the last one
    for n, (du, size) in enumerate([("06", 299000), ("06", 299000), ("07", 10), ("08", 402000)]):
        steps.append(("w", ("put", "a", {"id": {S: f"big{n}"}}, {"ph": {S: "d"}, "du": {S: du},
                                                                 "pay": {S: "y" * size}}, None)))
    steps.append(("q", {**base, "hash": ("ph", {S: "d"}), "range": ("du", ("=", [{S: "06"}])), "limit": None,
                        "forward": True}))
    # the same with an item grown past moto's 405 kB by nested updates (moto checks only puts)
    for n, (du, size) in enumerate([("06", 250000), ("06", 250000), ("07", 10), ("08", 10)]):
        steps.append(("w", ("put", "a", {"id": {S: f"e{n}"}}, {"ph": {S: "e"}, "du": {S: du},
                                                               "pay": {S: "y" * size}}, None)))
    steps.append(("w", ("update", "a", {"id": {S: "e3"}}, {"m": {"M": {}}}, [], None)))
    for part in range(4):
        steps.append(("w", ("nested", "a", {"id": {S: "e3"}}, f"p{part}", 140000)))
    steps.append(("q", {**base, "hash": ("ph", {S: "e"}), "range": ("du", ("=", [{S: "06"}])), "limit": None,
                        "forward": True}))
    steps.append(("q", {**base, "index": "grp-num", "hash": ("grp", {S: "x"}),
                        "range": ("num", (">=", [{N: "10"}])), "limit": None, "forward": True}))
    # a long run read a page at a time: the first page reads only Limit + 1 of it
    for n in range(40):
        steps.append(("w", ("put", "a", {"id": {S: f"f{n:02d}"}}, {"ph": {S: "f"}, "du": {S: f"{10 + n}"}}, None)))
    for op, bounds in [(">=", ["12"]), ("<", ["45"]), ("BETWEEN", ["11", "40"]), ("begins_with", ["2"])]:
        for limit in (1, 3, 9, 10, 11):
            for forward in (True, False):
                steps.append(("q", {**base, "hash": ("ph", {S: "f"}), "range": ("du", (op, [{S: b} for b in bounds])),
                                    "limit": limit, "forward": forward}))
    dynamo_index.uninstall()
    walked = History(client, prefix).run(steps, install_at=None)
    before = dict(dynamo_index.stats)
    try:
        indexed = History(client, prefix).run(steps, install_at=0)
    finally:
        dynamo_index.uninstall()
    assert dynamo_index.mismatches == []
    assert indexed == walked
    assert dynamo_index.stats["window"] > before.get("window", 0)
    assert dynamo_index.stats["cut"] > before.get("cut", 0)
    assert dynamo_index.stats["partition"] > before.get("partition", 0)  # the 1 MB guard walked the partition


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "moto-copies"])
def test_rolled_back_transaction_moves_the_index_back(embedded_aws, walk_only, journal):
    """A transaction whose writes moved items between partitions and windows, then failed."""
    client = _client(embedded_aws)
    base = {"table": "a", "projection": None, "filter": None, "legacy": False, "count": False, "limit": None,
            "forward": True}
    queries = [("q", {**base, "index": "phase", "hash": ("ph", {S: ph}), "range": ("du", None)}) for ph in "ab"]
    queries += [("q", {**base, "index": "due", "hash": ("ph", {S: ph}), "range": ("du", ("<=", [{S: "02"}]))})
                for ph in "ab"]
    seed = [({"id": {S: f"k{i:02d}"}}, {"ph": {S: "a"}, "du": {S: f"0{i}"}}) for i in range(5)]
    failing = [("update", "a", {"id": {S: "k01"}}, {"ph": {S: "b"}}, None),
               ("update", "a", {"id": {S: "k03"}}, {"du": {S: "00"}}, None),
               ("delete", "a", {"id": {S: "k00"}}, {}, None),
               ("put", "a", {"id": {S: "k09"}}, {"ph": {S: "a"}, "du": {S: "01"}}, None),
               ("check", "a", {"id": {S: "k08"}}, {}, "exists")]
    steps = [("w", ("batch", "a", seed, [])), *queries, ("w", ("transact", failing)), *queries,
             ("w", ("transact", failing[:4])), *queries]
    prefix = f"r{uuid.uuid4().hex[:8]}"
    walked = History(client, prefix).run(steps, install_at=None)
    before = dict(dynamo_index.stats)
    try:
        indexed = History(client, prefix).run(steps, install_at=0, journal=journal)
    finally:
        dynamo_index.uninstall()
    assert dynamo_index.mismatches == []
    assert dynamo_index.stats["dropped"] == before.get("dropped", 0)
    assert dynamo_index.stats["rolled_back"] == before.get("rolled_back", 0) + journal  # journaled rollbacks
    assert indexed == walked


def test_concurrent_requests_through_the_lock(embedded_aws, walk_only):
    """Threads writing and querying through the server (its DynamoDB lock) in check mode."""
    client = _client(embedded_aws)
    history = History(client, f"c{uuid.uuid4().hex[:8]}")
    history.create()
    dynamo_index.install(check=True)
    before = dict(dynamo_index.stats)
    errors: list = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine = _client(embedded_aws)
        for _ in range(120):
            key = {"id": {S: rng.choice(IDS)}}
            try:
                if rng.random() < 0.5:
                    mine.update_item(TableName=history.name("a"), Key=key, UpdateExpression="SET #p = :p, #d = :d",
                                     ExpressionAttributeNames={"#p": "ph", "#d": "du"},
                                     ExpressionAttributeValues={":p": {S: rng.choice(PHASES)},
                                                                ":d": {S: rng.choice(DUES)}})
                elif rng.random() < 0.2:
                    mine.delete_item(TableName=history.name("a"), Key=key)
                else:
                    _due_query(mine, history.name("a"))
            except Exception as exc:  # collected: a thread's failure must fail the test
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        dynamo_index.uninstall()
        history.drop()
    assert errors == []
    assert dynamo_index.mismatches == []
    assert dynamo_index.stats["dropped"] == before.get("dropped", 0)
    assert dynamo_index.stats["window"] > before.get("window", 0)


def test_a_condition_parsed_once_compares_the_values_each_request_gives(embedded_aws, walk_only):
    """The same condition and filter texts with other values: each request is judged on its own."""
    client = _client(embedded_aws)
    table = f"cond{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": S}],
                        BillingMode="PAY_PER_REQUEST")
    dynamo_index.install(check=True)
    try:
        client.put_item(TableName=table, Item={"id": {S: "a"}, "n": {"N": "5"}})

        def add_if(expected: str) -> bool:
            try:
                client.update_item(TableName=table, Key={"id": {S: "a"}}, UpdateExpression="ADD n :one",
                                   ConditionExpression="n = :v", ExpressionAttributeValues={
                                       ":one": {"N": "1"}, ":v": {"N": expected}})
                return True
            except client.exceptions.ConditionalCheckFailedException:
                return False

        assert [add_if("5"), add_if("5"), add_if("6"), add_if("8"), add_if("7")] == [True, False, True, False, True]

        def scanned(at_least: str) -> int:
            return client.scan(TableName=table, FilterExpression="n >= :m",
                               ExpressionAttributeValues={":m": {"N": at_least}})["Count"]

        assert [scanned("8"), scanned("9"), scanned("8")] == [1, 0, 1]
    finally:
        dynamo_index.uninstall()
        client.delete_table(TableName=table)
