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


@pytest.mark.parametrize("function", sorted(roles()))
def test_every_grant_is_used_by_a_call_or_named_as_used_for_the_function(function):
    """Statement by statement (one that no call uses should go); the actions and tables within one
    are what the code may call, some on paths the rehearsal does not take."""
    uses = [*MAP["functions"][function]["uses"],
            *MAP["functions"].get(iam_map.SAME_CODE.get(function, ""), {"uses": []})["uses"]]
    for sid, statement in roles()[function].items():
        if statement["Effect"] == "Deny" or iam_map.exempt(function, sid):
            continue
        assert any(use["statement"] == sid for use in uses), f"{function}: {sid} is granted, no call uses it"


@pytest.mark.parametrize("function", sorted(roles()))
def test_every_call_has_a_grant(function):
    statements = roles()[function]
    for use in MAP["functions"][function]["uses"]:
        statement = statements.get(use["statement"])
        assert statement is not None and statement["Effect"] == "Allow", f"{function}: {use} has no grant"
        assert use["action"] in statement["Action"], f"{function}: {use['statement']} no longer grants {use['action']}"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert any(iam.matches(r, use["resource"]) for r in resources), \
            f"{function}: {use['statement']} no longer grants {use['action']} on {use['resource']}"


def test_a_removed_or_an_unused_grant_fails_the_map():
    """The checks above can fail: a planted grant is unused, a removed one leaves a call without a grant."""
    statements = roles()["ProvisionPrepare"]
    uses = MAP["functions"]["ProvisionPrepare"]["uses"]
    assert "Secrets" not in statements  # it reads no secret; planted, nothing would use it:
    assert not any(use["statement"] == "Secrets" for use in uses)
    statements = roles()["APIHandler"]
    uses = MAP["functions"]["APIHandler"]["uses"]
    without = [r for r in statements["TablesWrite"]["Resource"] if "-nonces" not in r]
    nonces = [use for use in uses if use["resource"].endswith("table/${TablePrefix}-nonces")]
    assert nonces and not any(iam.matches(r, use["resource"]) for use in nonces for r in without)
