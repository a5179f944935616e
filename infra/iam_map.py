"""The map of every function's AWS use, from what the deploy rehearsal recorded:
function -> (service, action, resource) -> the statement of its role that allows it
(``infra/iam-map.json``, written by ``python -m local.rehearsal --map``; ``tests/unit/test_iam_map.py``
holds the template to it: no grant that no call uses, no call without a grant).

Resources are written with the template's own placeholders (``${AWS::Region}``,
``${TablePrefix}``, ``${ContentBucket.Arn}``...), so the map does not depend on the rehearsal's
names. Also the functions the rehearsal runs (:func:`function_specs`): any function of the stack,
found by its ``Handler`` and its role, so a function added to the template is covered by
declaring it there.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from infra import iam

# Grants that no code of the function calls: the Lambda service or runtime uses them for it.
PLATFORM_USED = {
    "Logs": "the Lambda runtime writes the function's log stream",
    "Traces": "the X-Ray SDK sends trace segments through the Lambda runtime's daemon",
    "ReportFailedEvents": "Lambda sends an asynchronous event that failed its retries to the failed-events queue",
    "DeliverLogs": "Step Functions delivers the state machines' error logs itself",
}

# Grants the rehearsal cannot reach ("Sid", or "Function:Sid"), and why: each is checked by reading
# the code that uses it.
UNREACHED = {
    "StopAppliances": "moto's ECS fails to start a Fargate task in a VPC (an appliance's), so none runs to be stopped",
    "ReadApplianceTokens": "the same: an appliance's token is read from its running task",
    "PassApplianceRoles": "ECS checks iam:PassRole when it starts a task definition with roles: none starts here",
    **{f"{function}:FindAppliances": "the same: a workshop's appliance tasks are looked for once one was started"
       for function in ("ProvisionDeploy", "ResetDeploy", "ProvisionCheckReady", "WarmCheckReady")},
    "WarmStart:StartAppliances": "a warm pool of a workshop with an appliance starts one: the rehearsal's warm "
                                 "workshop has none",
    "OutboxDispatcher:TablesRead": "a waitlisted registration's email counts its place (the waitlist index), and "
                                   "a settle whose outbox changed while it was sent reads it again: every "
                                   "participant of the rehearsal gets a seat, and nothing else writes an outbox "
                                   "while it is sent (tests/functional/test_outbox_dispatch.py)",
}


def exempt(function: str, sid: str) -> bool:
    """Whether a grant needs no recorded call: Lambda uses it, or the rehearsal cannot reach it."""
    return sid in PLATFORM_USED or sid in UNREACHED or f"{function}:{sid}" in UNREACHED


def where(rehearsal: Any) -> iam.Where:
    resources = rehearsal.report["resources"]
    hash_keys = {}
    for resource in resources.values():
        if resource["type"] == "AWS::DynamoDB::Table":
            schema = rehearsal.client("dynamodb").describe_table(TableName=resource["id"])["Table"]["KeySchema"]
            hash_keys[resource["id"]] = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    secrets = {s["Name"]: s["ARN"] for page in rehearsal.client("secretsmanager").get_paginator("list_secrets")
               .paginate() for s in page["SecretList"]}
    return iam.Where(rehearsal.region, rehearsal.account, hash_keys, secrets)


def functions_of(template: Mapping[str, Any], created: Mapping[str, Any]) -> dict[str, str]:
    """Every function of the stack with code of its own (not an inline custom resource) -> its role."""
    out = {}
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::Lambda::Function" or logical not in created or "ZipFile" in props.get("Code", {}):
            continue
        out[logical] = props["Role"]["Fn::GetAtt"][0]
    return out


def function_specs(rehearsal: Any) -> list[dict[str, Any]]:
    """What ``local/function_host.py`` needs to run each function as Lambda would."""
    base = {k: v for k, v in rehearsal.env().items() if not k.startswith("AWS_")}
    spot = where(rehearsal)
    specs = []
    for logical, role in sorted(functions_of(rehearsal.deployed, rehearsal.report["resources"]).items()):
        name = rehearsal.report["resources"][logical]["id"]
        config = rehearsal.function_configuration(logical)
        env = {**base, **config.get("Environment", {}).get("Variables", {}), **rehearsal.roles.assume(role),
               "AWS_REGION": rehearsal.region, "AWS_DEFAULT_REGION": rehearsal.region,
               "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_ENDPOINT_URL": rehearsal.endpoint,
               "WOD_AWS_ENDPOINT": rehearsal.endpoint,  # the SDK's endpoint: the embedded AWS
               "SSL_CERT_FILE": str(rehearsal.cert),  # trusts the rehearsal's certificate (PublicUrl, HubUrl)
               "POWERTOOLS_TRACE_DISABLED": "true"}
        spec: dict[str, Any] = {
            "logical": logical, "role": role, "name": name, "handler": config["Handler"], "env": env,
            "timeout": config.get("Timeout", 60), "policy": rehearsal.roles.deployed[role],
            "region": rehearsal.region, "account": rehearsal.account, "hash_keys": dict(spot.hash_keys),
            "secrets": dict(spot.secrets), "record": str(rehearsal.functions.record)}
        if logical == "APIHandler":  # API Gateway's part: HTTPS on PublicUrl's port
            spec["https"] = {"port": rehearsal.ports["api"], "cert": str(rehearsal.cert), "key": str(rehearsal.key)}
            # a webhook receiver's name answers a public address when the hook is added, then this
            # machine's: the test delivery is refused before connecting, as after a DNS change
            spec["dns"] = {"hooks.example.org": ["93.184.215.14", "127.0.0.1"]}
        specs.append(spec)
    return specs


def generalise(rehearsal: Any) -> list[tuple[str, str]]:
    """(a value of this rehearsal, the template's placeholder for it), longest first."""
    pairs: list[tuple[str, str]] = []
    for logical, resource in rehearsal.report["resources"].items():
        value, kind = resource["id"], resource["type"]
        if kind == "AWS::S3::Bucket":
            pairs.append((f"arn:aws:s3:::{value}", f"${{{logical}.Arn}}"))
        elif kind == "AWS::SQS::Queue":
            queue = value.rstrip("/").rsplit("/", 1)[-1]
            pairs.append((iam.Where(rehearsal.region, rehearsal.account).arn("sqs", queue), f"${{{logical}.Arn}}"))
        elif kind == "AWS::Lambda::Function":
            pairs.append((f"arn:aws:lambda:{rehearsal.region}:{rehearsal.account}:function:{value}",
                          f"${{{logical}.Arn}}"))
        elif kind in ("AWS::StepFunctions::StateMachine", "AWS::SNS::Topic"):
            pairs.append((value, f"${{{logical}}}"))
    prefix = rehearsal.parameters.get("TablePrefix", "wod")
    pairs += [(f":table/{prefix}-", ":table/${TablePrefix}-"), (f":secret:{rehearsal.secrets_prefix}/",
                                                                 ":secret:${SecretsPrefix}/"),
              (f"/{rehearsal.parameters['Location']}-", "/${Location}-"),
              (f":identity/{rehearsal.parameters['MailDomain']}", ":identity/${MailDomain}"),
              (f":configuration-set/{rehearsal.stack}-mail", ":configuration-set/${MailConfigurationSet}"),
              (f":{rehearsal.region}:", ":${AWS::Region}:"), (f":{rehearsal.account}:", ":${AWS::AccountId}:"),
              (f"/{rehearsal.parameters['EcsCluster']}", "/${EcsCluster}")]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def general(value: str, pairs: list[tuple[str, str]]) -> str:
    for concrete, placeholder in pairs:
        value = value.replace(concrete, placeholder)
    value = re.sub(r"(\$\{ContentBucket\.Arn\}/[^/]+)/.+$", r"\1/*", value)  # a workshop's files
    value = re.sub(r"(/stream/)[^/|]+$", r"\1*", value)  # a table's stream: its label is its creation time
    return re.sub(r"(:secret:[^:]+)-[A-Za-z0-9]{6}$", r"\1-??????", value)  # Secrets Manager's random suffix


def build(rehearsal: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """{"functions": {function: {"role", "uses": [...], "grants": {Sid: how it is checked}, "denies"}},
    "unused": ["function: Sid"], "refused": ["function: action on resource"]}"""
    pairs = generalise(rehearsal)
    roles = rehearsal.roles
    owners = {**functions_of(rehearsal.deployed, rehearsal.report["resources"]), "StateMachineRole": "StateMachineRole"}
    out: dict[str, Any] = {"functions": {}, "refused": []}
    for function, role in sorted(owners.items()):
        mine = [r for r in records if r["function"] == function]
        uses = {(r["service"], r["action"], general(r["resource"], pairs), r["statement"] or "")
                for r in mine if r["allowed"]}
        out["functions"][function] = {
            "role": role, "grants": dict(roles.checked.get(role, {})),
            "denies": sorted(str(s.get("Sid")) for s in roles.deployed.get(role, {}).get("Statement", [])
                             if s["Effect"] == "Deny"),
            "uses": [{"service": s, "action": a, "resource": res, "statement": sid} for s, a, res, sid in sorted(uses)]}
        out["refused"] += sorted({f"{function}: {r['action'] or r['operation']} on {general(r['resource'], pairs)}"
                                  for r in mine if not r["allowed"]})
    return finish(out)


def finish(found: dict[str, Any]) -> dict[str, Any]:
    """The grants no recorded call used, bar those Lambda uses or the rehearsal cannot reach."""
    found["unused"] = []
    for function, use in sorted(found["functions"].items()):
        used = {u["statement"] for u in use["uses"]}
        found["unused"] += [f"{function}: {sid}" for sid in sorted(use["grants"])
                            if sid not in used and sid not in use["denies"] and not exempt(function, sid)]
    return found


def merge(kept: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """The map kept so far and what one more rehearsal recorded: every use either saw (a path that
    depends on timing, such as a server slower to start, is not taken by every run), grants as now."""
    out = json.loads(json.dumps(recorded))
    for function, use in out["functions"].items():
        before = kept.get("functions", {}).get(function, {}).get("uses", [])
        grants = set(use["grants"])
        union = {json.dumps(u, sort_keys=True) for u in [*before, *use["uses"]] if u["statement"] in grants}
        use["uses"] = [json.loads(u) for u in sorted(union)]
    return finish(out)
