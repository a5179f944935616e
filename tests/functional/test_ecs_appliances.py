"""On AWS a workshop's appliance is an ECS task per student (against moto's ECS)."""
from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.appliances import EcsAppliances
from chalicelib.domain.errors import Unavailable

APPLIANCE = {"command": ["serve"], "port_base": 9100, "health_path": "/health"}


@pytest.fixture
def ecs(aws):
    client = boto3.client("ecs", region_name="us-east-1")
    client.create_cluster(clusterName="wod-appliances")
    client.register_task_definition(family="wod-appliance-wkshp-api101", containerDefinitions=[
        {"name": "appliance", "image": "example/inventory-api:1", "memory": 256, "essential": True}])
    return EcsAppliances(lambda: client, "wod-appliances", ["subnet-1"], ["sg-1"])


def test_start_is_idempotent_and_stop_ends_the_task(ecs):
    ecs.start("WKSHP-API101", "student201", APPLIANCE, 9100)
    ecs.start("WKSHP-API101", "student201", APPLIANCE, 9100)  # a retried task state starts nothing more
    arns = ecs._tasks("student201")
    assert len(arns) == 1
    task = ecs.client_factory().describe_tasks(cluster="wod-appliances", tasks=arns)["tasks"][0]
    assert (task["startedBy"], task["launchType"]) == ("student201", "FARGATE")
    assert {"name": "APPLIANCE_PORT", "value": "9100"} in task["overrides"]["containerOverrides"][0]["environment"]
    assert ecs.url("student201", 9100) == "http://student201.appliances.internal:9100"
    environment = {v["name"]: v["value"] for v in task["overrides"]["containerOverrides"][0]["environment"]}
    assert ecs.token("student201") == environment["APPLIANCE_TOKEN"] and len(environment["APPLIANCE_TOKEN"]) >= 32
    assert ecs._tasks("student202") == []
    ecs.start("WKSHP-API101", "student202", APPLIANCE, 9101)
    assert ecs.token("student202") != ecs.token("student201")  # each student's own
    ecs.stop("student201")
    assert ecs._tasks("student201") == []
    with pytest.raises(Unavailable, match="not running"):
        ecs.token("student201")


def test_unknown_task_definition_is_a_clear_error(ecs):
    with pytest.raises(Unavailable, match="appliance task of student1 did not start"):
        ecs.start("WKSHP-NOPE", "student1", APPLIANCE, 9100)
