"""IAM as AWS applies it to one call, for the deploy rehearsal (``local/rehearsal.py``).

moto enforces IAM when asked (``INITIAL_NO_AUTH_ACTION_COUNT``) but evaluates only the action for
most services: it authorizes DynamoDB, SES, Secrets Manager, Step Functions, Lambda, SNS and ECS
requests against the resource ``*`` and fails every statement that has a condition. So a role's
policy is checked two ways (:func:`moto_copy` says which way for each statement):

- moto checks the signature and the action of every request, with a copy of the policy it can
  evaluate (resources widened to ``*`` where moto passes ``*``, conditions left to the rehearsal);
- :class:`Policy` checks every call a function makes, as botocore is about to send it
  (:func:`requests_of` turns a call into the IAM requests AWS evaluates: one per item of a
  DynamoDB transaction, the identity and configuration set of a sent email, a copy's source, ...),
  against the policy the stack deployed: ``Action``/``NotAction`` (expanded by policyuniverse),
  ``Resource``/``NotResource`` (IAM's ``*`` and ``?`` wildcards) and conditions.

What it cannot evaluate it refuses, saying why (a :class:`Decision`'s ``unevaluated``), rather than
guess: a condition operator or key it does not know (:data:`KNOWN_KEYS` are those it supplies
wherever AWS does, so that a missing one is missing on AWS too), a leading key it cannot read from
a request (a query on an index), a statement with neither ``Resource`` nor ``NotResource``.
"""
from __future__ import annotations

import email
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

# Services whose requests moto authorizes against their own resource ARN; every other one, against "*".
MOTO_RESOURCES = ("s3", "sqs", "iam", "sts")
# IAM's name of an action -> the names moto asks for (its operation names) where they differ.
MOTO_ACTIONS = {
    "lambda:InvokeFunction": ["lambda:Invoke"],
    "dynamodb:PutItem": ["dynamodb:TransactWriteItems"], "dynamodb:UpdateItem": ["dynamodb:TransactWriteItems"],
    "dynamodb:DeleteItem": ["dynamodb:TransactWriteItems"],
    "dynamodb:ConditionCheckItem": ["dynamodb:TransactWriteItems"], "dynamodb:GetItem": ["dynamodb:TransactGetItems"],
}
TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem"}
S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
              "DeleteObjects": "DeleteObject", "CopyObject": "PutObject", "ListObjectVersions": "ListBucketVersions",
              "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
              "ListParts": "ListMultipartUploadParts"}
# Condition keys (lower case) the rehearsal supplies wherever AWS would: one missing from a request is
# missing on AWS too. Any other key in a condition cannot be evaluated here.
KNOWN_KEYS = frozenset({"aws:securetransport", "aws:requestedregion", "aws:principalaccount", "aws:sourceaccount",
                        "aws:principalservicename", "dynamodb:leadingkeys", "ecs:cluster", "iam:passedtoservice"})
NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike")


@dataclass(frozen=True)
class Request:
    """One IAM request: what AWS evaluates for (part of) one API call."""

    action: str  # dynamodb:UpdateItem
    resource: str  # an ARN, or "*" for an action without resource-level permissions
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # condition keys
    unknown: frozenset[str] = frozenset()  # keys (lower case) AWS supplies that the rehearsal could not read


class Unevaluable(ValueError):
    """A statement the rehearsal cannot decide for a request: the call is refused, saying why."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: str | None = None  # the Sid of an Allow that grants it
    denied_by: str | None = None  # the Sid of an explicit Deny
    unevaluated: str | None = None  # why a statement could not be decided (then refused)


@cache
def _glob(pattern: str, case: bool) -> re.Pattern[str]:
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{text}$", 0 if case else re.IGNORECASE)


def matches(pattern: str, value: str, case: bool = True) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` one character."""
    return bool(_glob(pattern, case).match(value))


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(item).lower() if isinstance(item, bool) else str(item) for item in items]


def _arn_matches(pattern: str, value: str) -> bool:
    """ArnEquals and ArnLike alike: each of the six colon-separated parts matched on its own."""
    wanted, got = pattern.split(":", 5), value.split(":", 5)
    return len(wanted) == len(got) == 6 and all(matches(w, g) for w, g in zip(wanted, got, strict=True))


def _operator_holds(operator: str, expected: list[str], actual: tuple[str, ...]) -> bool:
    base = operator.removesuffix("IfExists")
    if base in ("StringEquals",):
        return any(a == e for a in actual for e in expected)
    if base in ("StringEqualsIgnoreCase", "Bool"):
        return any(a.lower() == e.lower() for a in actual for e in expected)
    if base in ("StringLike",):
        return any(matches(e, a) for a in actual for e in expected)
    if base in ("ArnEquals", "ArnLike"):
        return any(_arn_matches(e, a) for a in actual for e in expected)
    if base in NEGATED:
        return not _operator_holds(base.replace("Not", "", 1), expected, actual)
    raise Unevaluable(f"the condition operator {operator} is not evaluated by the rehearsal")


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, tuple[str, ...]],
                    unknown: frozenset[str] = frozenset()) -> bool:
    """Every operator and key of a statement's ``Condition`` holds for ``context`` (keys in any case).
    A key missing from the request: the condition holds with ``...IfExists``, a negated operator or
    ``ForAllValues:``, else not; ``ForAnyValue:``/``ForAllValues:`` over multivalued keys."""
    given = {key.lower(): value for key, value in context.items()}
    for operator, keys in condition.items():
        qualifier, _, bare = operator.rpartition(":")
        for key, value in keys.items():
            name = key.lower()
            if name in unknown or (name not in given and name not in KNOWN_KEYS):
                raise Unevaluable(f"the rehearsal does not read the condition key {key} of this request")
            expected, actual = _values(value), given.get(name)
            if actual is None:
                if qualifier == "ForAllValues" or bare.endswith("IfExists") or (
                        qualifier != "ForAnyValue" and bare in NEGATED):
                    continue
                return False
            if qualifier == "ForAllValues":
                held = all(_operator_holds(bare, expected, (one,)) for one in actual)
            else:  # ForAnyValue, or a single-valued key
                held = _operator_holds(bare, expected, actual)
            if not held:
                return False
    return True


def _listed(value: Any) -> list[str]:
    return [str(item) for item in (value if isinstance(value, list) else [value])]


class Statement:
    """One statement of a policy: policyuniverse parses it and expands its actions."""

    def __init__(self, raw: Mapping[str, Any], number: int):
        from policyuniverse.statement import Statement as Parsed

        self.raw = dict(raw)
        self.sid = str(raw.get("Sid") or f"#{number}")
        self.effect = str(raw.get("Effect"))
        self.condition = raw.get("Condition") or {}
        self.not_action, self.not_resource = "NotAction" in raw, "NotResource" in raw
        self.actions = {a.lower() for a in _listed(raw.get("NotAction" if self.not_action else "Action", []))}
        # NotAction: every action but those, policyuniverse's list or not
        self.expanded = set() if self.not_action else Parsed(self.raw).actions_expanded
        self.resources = _listed(raw["NotResource" if self.not_resource else "Resource"]) \
            if "Resource" in raw or self.not_resource else None

    def covers(self, request: Request) -> bool:
        action = request.action.lower()
        named = action in self.expanded or any(matches(a, action, case=False) for a in self.actions)
        if named == self.not_action:
            return False
        if self.resources is None:
            raise Unevaluable(f"{self.sid} names no Resource (nor NotResource): AWS refuses such a policy")
        if any(matches(r, request.resource) for r in self.resources) == self.not_resource:
            return False
        return condition_holds(self.condition, request.context, request.unknown)


class Policy:
    """An identity policy (a role's) or a resource policy, as AWS evaluates it: an explicit Deny
    wins, then any Allow, else an implicit deny. A statement the rehearsal cannot decide refuses."""

    def __init__(self, document: Mapping[str, Any]):
        raw = document.get("Statement", [])
        self.statements = [Statement(s, n) for n, s in enumerate(raw if isinstance(raw, list) else [raw], 1)]

    def decide(self, request: Request) -> Decision:
        covering = []
        for statement in self.statements:
            try:
                if statement.covers(request):
                    covering.append(statement)
            except Unevaluable as exc:
                return Decision(False, unevaluated=f"{statement.sid}: {exc}")
        deny = next((s for s in covering if s.effect == "Deny"), None)
        if deny is not None:
            return Decision(False, denied_by=deny.sid)
        allow = next((s for s in covering if s.effect == "Allow"), None)
        return Decision(allow is not None, statement=allow.sid if allow else None)


def moto_copy(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the policy moto enforces, Sid -> how that statement is checked). moto reads no
    ``NotResource`` (it allows every resource) and fails every statement with a condition: an Allow
    with either is widened to its actions on ``*`` for moto, a Deny is left to the rehearsal."""
    kept, how = [], {}
    for number, raw in enumerate(document.get("Statement", []), 1):
        sid = str(raw.get("Sid") or f"#{number}")
        excluded = "NotAction" in raw
        actions = _listed(raw.get("NotAction" if excluded else "Action", []))
        services = {a.split(":")[0] for a in actions}
        resources = raw.get("Resource", "*")
        wildcard = resources == "*" or resources == ["*"]
        if raw.get("Condition") or "NotResource" in raw:
            if raw["Effect"] == "Deny":
                how[sid] = ("rehearsal: action, resource and condition (moto fails every conditional statement)"
                            if raw.get("Condition") else "rehearsal: action and resource (moto reads no NotResource)")
                continue
            how[sid] = "moto: action; rehearsal: resource and condition"
        elif wildcard:
            how[sid] = "moto: action (no resource-level permission)"
        elif services <= set(MOTO_RESOURCES) and not excluded:
            how[sid] = "moto: action and resource; rehearsal: the same"
        else:
            how[sid] = "moto: action; rehearsal: resource"
        exact = services <= set(MOTO_RESOURCES) and not raw.get("Condition") and "NotResource" not in raw
        copy = {"Sid": sid if sid[0] != "#" else f"S{number}", "Effect": raw["Effect"],
                ("NotAction" if excluded else "Action"): sorted(
                    {*actions, *(alias for a in actions for alias in ([] if excluded else MOTO_ACTIONS.get(a, [])))}),
                "Resource": resources if exact else "*"}
        kept.append(copy)
    return {"Version": "2012-10-17", "Statement": kept}, how


@dataclass(frozen=True)
class Where:
    """What turning a call into IAM requests needs to know about the account."""

    region: str
    account: str
    hash_keys: Mapping[str, str] = field(default_factory=dict)  # table name -> its partition key
    secrets: Mapping[str, str] = field(default_factory=dict)  # secret name -> its ARN

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


LEADING = "dynamodb:LeadingKeys"


def _leading(where: Where, table: str, *items: Mapping[str, Any] | None) -> dict[str, Any]:
    """Request fields for the partition keys of ``items`` (whole keys or items) of ``table``."""
    key = where.hash_keys.get(table)
    found = []
    for item in items:
        value = (item or {}).get(key or "")
        if not key or not isinstance(value, dict) or not value:
            return {"unknown": frozenset({LEADING.lower()})}
        found.append(str(next(iter(value.values()))))
    return {"context": {LEADING: tuple(sorted(set(found)))}} if found else {}


def _query_leading(where: Where, params: Mapping[str, Any]) -> dict[str, Any]:
    """A query's partition key value, from its key condition (``#0 = :0`` as pynamodb writes it)."""
    table, key = str(params.get("TableName")), where.hash_keys.get(str(params.get("TableName")))
    if params.get("IndexName") or not key:  # an index's partition key is not the table's
        return {"unknown": frozenset({LEADING.lower()})}
    if params.get("KeyConditions"):
        values = params["KeyConditions"].get(key, {}).get("AttributeValueList") or [None]
        return _leading(where, table, {key: values[0]})
    names = {placeholder: name for placeholder, name in (params.get("ExpressionAttributeNames") or {}).items()}
    for name, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", str(params.get("KeyConditionExpression") or "")):
        if names.get(name, name) == key:
            return _leading(where, table, {key: (params.get("ExpressionAttributeValues") or {}).get(placeholder)})
    return {"unknown": frozenset({LEADING.lower()})}


def _dynamodb(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    def table(name: str, index: str | None = None) -> str:
        return where.arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation == "TransactWriteItems":
        out = []
        for item in params.get("TransactItems", []):
            [(kind, body)] = item.items()
            out.append(Request(f"dynamodb:{TRANSACT_WRITE[kind]}", table(body["TableName"]),
                               **_leading(where, body["TableName"], body.get("Key") or body.get("Item"))))
        return out
    if operation in ("DescribeStream", "GetShardIterator"):  # DynamoDB Streams (signed as dynamodb)
        return [Request(f"dynamodb:{operation}", str(params.get("StreamArn", "*")))]
    if operation == "GetRecords":  # the iterator names its stream (moto's: "<stream ARN>|1|<id>")
        stream = str(params.get("ShardIterator", "")).split("|", 1)[0]
        return [Request("dynamodb:GetRecords", stream if stream.startswith("arn:") else "*")]
    if operation == "ListStreams":
        return [Request("dynamodb:ListStreams", "*")]
    if operation == "TransactGetItems":
        return [Request("dynamodb:GetItem", table(i["Get"]["TableName"]),
                        **_leading(where, i["Get"]["TableName"], i["Get"].get("Key")))
                for i in params.get("TransactItems", [])]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        out = []
        for name, body in params.get("RequestItems", {}).items():
            if operation == "BatchGetItem":
                keys = list(body.get("Keys", []))
            else:
                keys = [w.get("Key") or w.get("Item") for w in (next(iter(r.values())) for r in body)]
            out.append(Request(f"dynamodb:{operation}", table(name), **_leading(where, name, *keys)))
        return out
    name = params.get("TableName")
    if not name:
        return [Request(f"dynamodb:{operation}", "*")]
    if operation == "Query":
        return [Request("dynamodb:Query", table(name, params.get("IndexName")), **_query_leading(where, params))]
    item = params.get("Key") or params.get("Item")
    return [Request(f"dynamodb:{operation}", table(name, params.get("IndexName")),
                    **(_leading(where, name, item) if item is not None else {}))]


def _sender_domain(params: Mapping[str, Any]) -> str:
    source = params.get("Source") or ""
    if not source and params.get("RawMessage"):
        data = params["RawMessage"].get("Data", b"")
        source = str(email.message_from_bytes(data if isinstance(data, bytes) else data.encode())["From"] or "")
    return email.utils.parseaddr(source)[1].rpartition("@")[2]


def _ecs(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
    context = {"ecs:cluster": (where.arn("ecs", f"cluster/{cluster}"),)}
    if operation == "RunTask":
        family = str(params.get("taskDefinition", "")).rsplit("/", 1)[-1]
        return [Request("ecs:RunTask", where.arn("ecs", f"task-definition/{family}"), context)]
    if operation == "ListTasks":
        return [Request("ecs:ListTasks", where.arn("ecs", f"container-instance/{cluster}/*"), context)]
    tasks = params.get("tasks") or [params.get("task")]
    return [Request(f"ecs:{operation}", t if str(t).startswith("arn:") else where.arn("ecs", f"task/{cluster}/{t}"),
                    context) for t in tasks if t]


def _s3(operation: str, params: Mapping[str, Any]) -> list[Request]:
    bucket = params.get("Bucket", "*")
    action = f"s3:{S3_ACTIONS.get(operation, operation)}"
    if params.get("VersionId") and action in ("s3:GetObject", "s3:DeleteObject"):
        action += "Version"
    if operation == "DeleteObjects":
        return [Request(action + ("Version" if o.get("VersionId") else ""), f"arn:aws:s3:::{bucket}/{o['Key']}")
                for o in params.get("Delete", {}).get("Objects", [])]
    key = params.get("Key")
    out = [Request(action, f"arn:aws:s3:::{bucket}" + (f"/{key}" if key and action != "s3:ListBucket" else ""))]
    if operation == "CopyObject":  # the copy also reads its source
        source = params.get("CopySource")
        if isinstance(source, Mapping):
            path, version = f"{source.get('Bucket')}/{source.get('Key')}", source.get("VersionId")
        else:
            path, _, query = str(source).lstrip("/").partition("?versionId=")
            version = query or None
        out.append(Request("s3:GetObjectVersion" if version else "s3:GetObject", f"arn:aws:s3:::{path}"))
    return out


def requests_of(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    """The IAM requests AWS evaluates for one API call (``service`` is the signing name), each with
    the global condition keys every request has (over HTTPS, as the SDK's endpoints are on AWS)."""
    every = {"aws:SecureTransport": ("true",), "aws:RequestedRegion": (where.region,),
             "aws:PrincipalAccount": (where.account,)}
    return [replace(r, context={**every, **r.context}) for r in _requests(service, operation, params, where)]


def _requests(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    if service == "dynamodb":
        return _dynamodb(operation, params, where)
    if service == "s3":
        return _s3(operation, params)
    if service == "ses":
        if operation in ("SendRawEmail", "SendEmail"):
            out = [Request(f"ses:{operation}", where.arn("ses", f"identity/{_sender_domain(params)}"))]
            if params.get("ConfigurationSetName"):
                out.append(Request(f"ses:{operation}",
                                   where.arn("ses", f"configuration-set/{params['ConfigurationSetName']}")))
            return out
        return [Request(f"ses:{operation}", "*")]
    if service == "secretsmanager" and params.get("SecretId"):
        secret = str(params["SecretId"])
        arn = secret if secret.startswith("arn:") else where.secrets.get(secret, where.arn("secretsmanager",
                                                                                          f"secret:{secret}"))
        return [Request(f"secretsmanager:{operation}", arn)]
    if service == "states":
        arn = params.get("stateMachineArn") or params.get("executionArn") or "*"
        return [Request(f"states:{operation}", str(arn))]
    if service == "lambda" and params.get("FunctionName"):
        name = str(params["FunctionName"])
        action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
        return [Request(action, name if name.startswith("arn:") else where.arn("lambda", f"function:{name}"))]
    if service == "sns" and params.get("TopicArn"):
        return [Request(f"sns:{operation}", str(params["TopicArn"]))]
    if service == "sqs" and params.get("QueueUrl"):
        return [Request(f"sqs:{operation}", where.arn("sqs", str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]))]
    if service == "ecs":
        return _ecs(operation, params, where)
    if service == "sts" and params.get("RoleArn"):
        return [Request(f"sts:{operation}", str(params["RoleArn"]))]
    return [Request(f"{service}:{operation}", "*")]

