"""IAM as AWS applies it to one call, for the deploy rehearsal (``infra/rehearsal.py``).

moto enforces IAM when asked (``INITIAL_NO_AUTH_ACTION_COUNT``) but evaluates only the action for
most services: it authorizes DynamoDB, SES, Secrets Manager, Step Functions, Lambda, SNS and ECS
requests against the resource ``*`` and fails every statement that has a condition. So a role's
policy is checked two ways (:func:`moto_copy` says which way for each statement):

- moto checks the signature and the action of every request, with a copy of the policy it can
  evaluate (resources widened to ``*`` where moto passes ``*``, conditions left to the rehearsal);
- :class:`Policy` checks every call a function makes, as botocore is about to send it
  (:func:`requests_of` turns a call into the IAM requests AWS evaluates: one per item of a
  DynamoDB transaction, the identity and configuration set of a sent email, ...), against the
  policy the stack deployed: actions (expanded by policyuniverse), resources (IAM's ``*`` and
  ``?`` wildcards) and conditions (the operators the template uses).
"""
from __future__ import annotations

import email
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
              "DeleteObjects": "DeleteObject", "CopyObject": "PutObject"}


@dataclass(frozen=True)
class Request:
    """One IAM request: what AWS evaluates for (part of) one API call."""

    action: str  # dynamodb:UpdateItem
    resource: str  # an ARN, or "*" for an action without resource-level permissions
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # condition keys


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: str | None = None  # the Sid of an Allow that grants it
    denied_by: str | None = None  # the Sid of an explicit Deny


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


def _operator_holds(operator: str, expected: list[str], actual: tuple[str, ...]) -> bool:
    base = operator.removesuffix("IfExists")
    if base in ("StringEquals", "ArnEquals", "Bool"):
        return any(a == e for a in actual for e in expected)
    if base in ("StringEqualsIgnoreCase",):
        return any(a.lower() == e.lower() for a in actual for e in expected)
    if base in ("StringLike", "ArnLike"):
        return any(matches(e, a) for a in actual for e in expected)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return all(a != e for a in actual for e in expected)
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(matches(e, a) for a in actual for e in expected)
    raise ValueError(f"condition operator {operator} is not evaluated by the rehearsal")


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, tuple[str, ...]]) -> bool:
    """Every operator and key of a statement's ``Condition`` holds for ``context`` (missing keys:
    false, except ``...IfExists``; ``ForAnyValue:``/``ForAllValues:`` over multivalued keys)."""
    for operator, keys in condition.items():
        qualifier, _, bare = operator.rpartition(":")
        for key, value in keys.items():
            expected, actual = _values(value), context.get(key)
            if actual is None:
                if bare.endswith("IfExists") or qualifier == "ForAllValues":
                    continue
                return False
            if qualifier == "ForAllValues":
                held = all(_operator_holds(bare, expected, (one,)) for one in actual)
            else:  # ForAnyValue, or a single-valued key
                held = _operator_holds(bare, expected, actual)
            if not held:
                return False
    return True


class Statement:
    """One statement of a policy: policyuniverse parses it and expands its actions."""

    def __init__(self, raw: Mapping[str, Any], number: int):
        from policyuniverse.statement import Statement as Parsed

        self.raw = dict(raw)
        self.sid = str(raw.get("Sid") or f"#{number}")
        parsed = Parsed(self.raw)
        self.effect = parsed.effect
        self.actions = {a for a in parsed.actions}
        self.expanded = parsed.actions_expanded
        self.resources = parsed.resources
        self.condition = raw.get("Condition") or {}

    def covers(self, request: Request) -> bool:
        action = request.action.lower()
        if action not in self.expanded and not any(matches(a, action, case=False) for a in self.actions):
            return False
        if not any(matches(r, request.resource) for r in self.resources):
            return False
        return condition_holds(self.condition, request.context)


class Policy:
    """An identity policy (a role's) or a resource policy, as AWS evaluates it: an explicit Deny
    wins, then any Allow, else an implicit deny."""

    def __init__(self, document: Mapping[str, Any]):
        raw = document.get("Statement", [])
        self.statements = [Statement(s, n) for n, s in enumerate(raw if isinstance(raw, list) else [raw], 1)]

    def decide(self, request: Request) -> Decision:
        covering = [s for s in self.statements if s.covers(request)]
        deny = next((s for s in covering if s.effect == "Deny"), None)
        if deny is not None:
            return Decision(False, denied_by=deny.sid)
        allow = next((s for s in covering if s.effect == "Allow"), None)
        return Decision(allow is not None, statement=allow.sid if allow else None)


def moto_copy(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the policy moto enforces, Sid -> how that statement is checked)."""
    kept, how = [], {}
    for number, raw in enumerate(document.get("Statement", []), 1):
        sid = str(raw.get("Sid") or f"#{number}")
        actions = raw["Action"] if isinstance(raw["Action"], list) else [raw["Action"]]
        services = {a.split(":")[0] for a in actions}
        resources = raw.get("Resource", "*")
        wildcard = resources == "*" or resources == ["*"]
        if raw.get("Condition"):
            if raw["Effect"] == "Deny":
                how[sid] = "rehearsal: action, resource and condition (moto fails every conditional statement)"
                continue
            how[sid] = "moto: action; rehearsal: resource and condition"
        elif wildcard:
            how[sid] = "moto: action (no resource-level permission)"
        elif services <= set(MOTO_RESOURCES):
            how[sid] = "moto: action and resource; rehearsal: the same"
        else:
            how[sid] = "moto: action; rehearsal: resource"
        copy = {"Sid": sid if sid[0] != "#" else f"S{number}", "Effect": raw["Effect"],
                "Action": sorted({*actions, *(alias for a in actions for alias in MOTO_ACTIONS.get(a, []))}),
                "Resource": resources if services <= set(MOTO_RESOURCES) and not raw.get("Condition") else "*"}
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


def _leading(where: Where, table: str, item: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    key = where.hash_keys.get(table)
    value = (item or {}).get(key or "", {})
    found = next(iter(value.values()), None) if isinstance(value, dict) else None
    return {"dynamodb:LeadingKeys": (str(found),)} if found is not None else {}


def _dynamodb(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    def table(name: str, index: str | None = None) -> str:
        return where.arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation == "TransactWriteItems":
        out = []
        for item in params.get("TransactItems", []):
            [(kind, body)] = item.items()
            out.append(Request(f"dynamodb:{TRANSACT_WRITE[kind]}", table(body["TableName"]),
                               _leading(where, body["TableName"], body.get("Key") or body.get("Item"))))
        return out
    if operation in ("DescribeStream", "GetShardIterator"):  # DynamoDB Streams (signed as dynamodb)
        return [Request(f"dynamodb:{operation}", str(params.get("StreamArn", "*")))]
    if operation == "GetRecords":  # the iterator names its stream (moto's: "<stream ARN>|1|<id>")
        stream = str(params.get("ShardIterator", "")).split("|", 1)[0]
        return [Request("dynamodb:GetRecords", stream if stream.startswith("arn:") else "*")]
    if operation == "ListStreams":
        return [Request("dynamodb:ListStreams", "*")]
    if operation == "TransactGetItems":
        return [Request("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params.get("TransactItems", [])]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        out = []
        for name, body in params.get("RequestItems", {}).items():
            writes = body if isinstance(body, list) else []
            keys = [next(iter(w.values())) for w in writes]
            leading = sorted({v for k in keys for v in _leading(where, name, k.get("Key") or k.get("Item"))
                              .get("dynamodb:LeadingKeys", ())})
            out.append(Request(f"dynamodb:{operation}", table(name),
                               {"dynamodb:LeadingKeys": tuple(leading)} if leading else {}))
        return out
    name = params.get("TableName")
    if not name:
        return [Request(f"dynamodb:{operation}", "*")]
    return [Request(f"dynamodb:{operation}", table(name, params.get("IndexName")),
                    _leading(where, name, params.get("Key") or params.get("Item")))]


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


def requests_of(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    """The IAM requests AWS evaluates for one API call (``service`` is the signing name)."""
    if service == "dynamodb":
        return _dynamodb(operation, params, where)
    if service == "s3":
        bucket = params.get("Bucket", "*")
        action = f"s3:{S3_ACTIONS.get(operation, operation)}"
        secure = {"aws:SecureTransport": ("true",)}  # the SDK's endpoints are HTTPS on AWS
        if operation == "DeleteObjects":
            return [Request(action, f"arn:aws:s3:::{bucket}/{o['Key']}", secure)
                    for o in params.get("Delete", {}).get("Objects", [])]
        key = params.get("Key")
        return [Request(action, f"arn:aws:s3:::{bucket}" + (f"/{key}" if key and action != "s3:ListBucket" else ""),
                        secure)]
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

