"""Create the platform's tables from ``infra/tables.json``, the CloudFormation the AWS
deployment uses too: one definition of tables, indexes and TTL for both."""
from __future__ import annotations

import json
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "tables.json"


def table_definitions(prefix: str, template: Path = TEMPLATE) -> list[dict]:
    """Each table's CloudFormation properties, with the prefix filled in."""
    resources = json.loads(template.read_text())["Resources"]
    tables = []
    for resource in resources.values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = json.loads(json.dumps(resource["Properties"]))
        props["TableName"] = props["TableName"]["Fn::Sub"].replace("${TablePrefix}", prefix)
        tables.append(props)
    return tables


def create_tables(client, prefix: str) -> list[str]:
    """Create what is missing (with indexes and TTL); return the names created."""
    existing = set(client.list_tables()["TableNames"])
    created = []
    for props in table_definitions(prefix):
        name = props["TableName"]
        if name in existing:
            continue
        args = {key: props[key] for key in ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode")}
        for optional in ("GlobalSecondaryIndexes", "StreamSpecification"):
            if props.get(optional):
                args[optional] = props[optional]
        if "StreamSpecification" in args:
            args["StreamSpecification"] = {"StreamEnabled": True, **args["StreamSpecification"]}
        client.create_table(**args)
        client.get_waiter("table_exists").wait(TableName=name)
        if props.get("TimeToLiveSpecification"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])
        created.append(name)
    return created
