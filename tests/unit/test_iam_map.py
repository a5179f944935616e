"""The template held to the map of every function's AWS use (``infra/iam-map.json``, recorded by the
deploy rehearsal): every grant some call uses (least privilege stays least), every call a grant."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import iam, iam_map, template

MAP = json.loads((Path(__file__).resolve().parents[2] / "infra" / "iam-map.json").read_text())


def text(value: Any) -> Any:
    """A template value in the map's words: ``${Logical}``, ``${Logical.Arn}``, ``${Parameter}``."""
    if isinstance(value, list):
        return [text(item) for item in value]
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            return value["Fn::Sub"].replace("${AWS::Partition}", "aws")
        if "Ref" in value:
            return f"${{{value['Ref']}}}"
        if "Fn::GetAtt" in value:
            return "${" + ".".join(value["Fn::GetAtt"]) + "}"
        if "Fn::If" in value:  # the rehearsal's stack has every condition of a role on (EcsCluster given)
            return text(value["Fn::If"][1])
        return {key: text(item) for key, item in value.items()}
    return value


def roles() -> dict[str, dict[str, dict]]:
    """Every function's (and the state machines') role in the template: Sid -> statement."""
    found = {logical: template.function_role(logical, access) for logical, access in template.FUNCTIONS.items()}
    found["StateMachineRole"] = template.state_machines()["StateMachineRole"]
    return {logical: {s["Sid"]: s for s in text(role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])}
            for logical, role in found.items()}


def test_the_map_covers_every_function_the_template_declares():
    assert set(MAP["functions"]) == set(roles())
    assert MAP["refused"] == [] and MAP["unused"] == []


def uses_of(function: str) -> list[dict]:
    return MAP["functions"][function]["uses"]


def unused(function: str, statements: dict[str, dict], uses: list[dict]) -> list[str]:
    """Every grant no call uses: a statement, or one resource of a statement (a table, a secret, a
    state machine added to a statement that already has one is a grant too); the actions within a
    statement are what the code may call, some on paths the rehearsal does not take."""
    found = []
    for sid, statement in statements.items():
        if statement["Effect"] == "Deny" or iam_map.exempt(function, sid):
            continue
        mine = [use for use in uses if use["statement"] == sid]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found += [f"{sid}: {resource}" for resource in resources
                  if not any(iam.matches(resource, use["resource"]) for use in mine)]
    return found


def ungranted(statements: dict[str, dict], uses: list[dict]) -> list[str]:
    """Every recorded call the statement that allowed it no longer grants."""
    found = []
    for use in uses:
        statement = statements.get(use["statement"])
        resources = [] if statement is None else (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
        if statement is None or statement["Effect"] != "Allow" or use["action"] not in statement["Action"] or \
                not any(iam.matches(r, use["resource"]) for r in resources):
            found.append(f"{use['statement']}: {use['action']} on {use['resource']}")
    return found


@pytest.mark.parametrize("function", sorted(roles()))
def test_every_grant_is_used_by_a_call_or_named_as_used_for_the_function(function):
    """Statement by statement and resource by resource (one that no call uses should go)."""
    assert unused(function, roles()[function], uses_of(function)) == []


@pytest.mark.parametrize("function", sorted(roles()))
def test_every_call_has_a_grant(function):
    assert ungranted(roles()[function], MAP["functions"][function]["uses"]) == []


def test_a_planted_or_a_removed_grant_fails_the_map():
    """The checks above can fail: a grant planted in a statement of its own, or as one more table
    or secret of a statement already used, is unused; a table taken out leaves calls without a grant."""
    prepare = roles()["ProvisionPrepare"]
    link = "arn:aws:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}/link-key-??????"
    secrets = {"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [link]}
    assert unused("ProvisionPrepare", {**prepare, "Secrets": secrets}, uses_of("ProvisionPrepare")) == [
        f"Secrets: {secrets['Resource'][0]}"]
    admin = "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TablePrefix}-admin"
    lookup = {**prepare["TablesLookup"], "Resource": [*prepare["TablesLookup"]["Resource"], admin]}
    assert unused("ProvisionPrepare", {**prepare, "TablesLookup": lookup}, uses_of("ProvisionPrepare")) == [
        f"TablesLookup: {admin}"]
    intake = roles()["OrderIntake"]
    widened = {**intake["Secrets"], "Resource": [*intake["Secrets"]["Resource"], link]}
    assert unused("OrderIntake", {**intake, "Secrets": widened}, uses_of("OrderIntake")) == [f"Secrets: {link}"]
    api = roles()["APIHandler"]
    without = {**api["TablesWrite"], "Resource": [r for r in api["TablesWrite"]["Resource"] if "-nonces" not in r]}
    missing = ungranted({**api, "TablesWrite": without}, MAP["functions"]["APIHandler"]["uses"])
    assert missing and all(line.endswith("table/${TablePrefix}-nonces") for line in missing)
