"""Least privilege in the AWS template: the public API (and the time checks) may add audit entries
but never change or remove one; each backend task may only read items by key and update them in
place: no scan, no new item, no deletion, on any table."""
from __future__ import annotations

import pytest

from infra import template as infra

MUTATIONS = {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:Scan"}


def policy(logical: str) -> list[dict]:
    """The role's statements, conditional ones (``Fn::If``) taken as granted."""
    role = infra.function_role(logical, infra.FUNCTIONS[logical])
    statements = [statement for p in role["Properties"]["Policies"] for statement in p["PolicyDocument"]["Statement"]]
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]


def allowed_actions(statements: list[dict]) -> set[str]:
    return {action for s in statements if s["Effect"] == "Allow" for action in s["Action"]
            if str(action).startswith("dynamodb:")}


@pytest.mark.parametrize("logical", ["APIHandler", "TimeChecks"])
def test_audit_entries_cannot_be_changed_or_removed(logical):
    (deny,) = [s for s in policy(logical) if s["Effect"] == "Deny"]
    assert {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= set(deny["Action"])
    assert deny["Resource"] == [infra.table_arn("admin")]
    assert deny["Condition"] == {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["AUDIT"]}}


@pytest.mark.parametrize("logical", [name for name in infra.FUNCTIONS if name.startswith(
    ("Provision", "Cleanup", "Purge", "Reset", "Warm"))])
def test_backend_tasks_only_read_by_key_and_update_in_place(logical):
    actions = allowed_actions(policy(logical))
    assert not actions & MUTATIONS, f"{logical} may {sorted(actions & MUTATIONS)}"
    assert actions <= {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable", "dynamodb:UpdateItem"}


def test_backend_tasks_cannot_touch_the_frontends_tables():
    for logical in infra.FUNCTIONS:
        if logical.startswith(("Provision", "Cleanup", "Purge", "Reset", "Warm")):
            assert set(infra.FUNCTIONS[logical].tables) <= {"workshops", "students", "customers"}
            assert infra.FUNCTIONS[logical].tables.get("workshops", "lookup") == "lookup"
    assert infra.FUNCTIONS["ProvisionDeploy"].tables == {"workshops": "lookup", "students": "update",
                                                         "customers": "update"}
