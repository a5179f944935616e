"""What the rehearsal (``local/rehearsal.py``) does around the stack: what the operator brings (the
appliances' network), what the deploy must refuse, and where it reads or completes what moto's
CloudFormation made."""
from __future__ import annotations

from typing import Any

from infra import deploy as commands

ACCOUNT = "123456789012"  # moto's account


def function_configuration(rehearsal: Any, logical: str) -> dict[str, Any]:
    """A function's configuration as the stack made it, read from the embedded AWS's own state
    (moto refuses the signature of its Lambda API's GET requests when IAM is enforced)."""
    from moto.awslambda.models import lambda_backends

    function = lambda_backends[ACCOUNT][rehearsal.region].get_function(rehearsal.report["resources"][logical]["id"])
    return {"Handler": function.handler, "Timeout": function.timeout,
            # Lambda's variables are strings (moto keeps a Number parameter's Ref as a number)
            "Environment": {"Variables": {k: str(v) for k, v in function.environment_vars.items()}}}


def executing_machines(rehearsal: Any) -> None:
    """moto's CloudFormation puts state machines in its recording Step Functions backend, which
    never runs them, and leaves their ``DefinitionSubstitutions`` out: the executing backend gets
    the same machines (name, role: the same ARN) with the definition CloudFormation would make."""
    from moto.stepfunctions.models import stepfunctions_backends

    from local.stepfunctions import enable_execution

    made = {m.arn: m for m in stepfunctions_backends[ACCOUNT][rehearsal.region].state_machines}
    enable_execution(rehearsal.endpoint.replace("localhost", "127.0.0.1"))
    client = rehearsal.client("stepfunctions")
    for logical, resource in rehearsal.report["resources"].items():
        if resource["type"] == "AWS::StepFunctions::StateMachine":
            machine = made[resource["id"]]
            definition = machine.definition
            for key, value in rehearsal.resolver()(rehearsal.deployed["Resources"][logical]["Properties"].get(
                    "DefinitionSubstitutions", {})).items():
                definition = definition.replace(f"${{{key}}}", str(value))
            created = client.create_state_machine(name=machine.name, definition=definition,
                                                  roleArn=machine.roleArn)["stateMachineArn"]
            if created != resource["id"]:
                raise RuntimeError(f"{logical}: {created} is not the stack's {resource['id']}")


def refusals(rehearsal: Any) -> None:
    """What the deploy refuses before creating anything: another application's active receipt
    rule set in the region; a location stack in a region without its frontend's tables."""
    with rehearsal.step("the deploy's refusals, before anything is created"):
        ses, refused = rehearsal.client("ses"), {}
        ses.create_receipt_rule_set(RuleSetName="crm-inbound")
        ses.set_active_receipt_rule_set(RuleSetName="crm-inbound")
        london = {**rehearsal.parameters, "Frontend": "false", "Location": "london", "AlarmEmail": "",
                  "OrdersAddress": "orders-london@example.org", "Locations": "{}"}
        for name, stack, region, parameters in (("rule_set", rehearsal.stack, rehearsal.region, rehearsal.parameters),
                                                ("other_region", f"{rehearsal.stack}-london", "us-west-2", london)):
            try:
                commands.deploy(rehearsal.package, bucket=rehearsal.bucket, stack=stack, region=region,
                                parameters=parameters, endpoint=rehearsal.endpoint, run=rehearsal.run,
                                query=rehearsal.query, say=lambda line: None)
            except commands.DeployError as exc:
                refused[name] = str(exc)
                rehearsal.out(f"    refused: {exc}")
            else:
                raise RuntimeError(f"the deploy of {stack} in {region} was not refused")
        ses.set_active_receipt_rule_set()  # the other application's set let go of, as its owner would
        ses.delete_receipt_rule_set(RuleSetName="crm-inbound")
        rehearsal.report["refusals"] = refused


def appliance_network(rehearsal: Any) -> None:
    """The appliances' subnet and security group, which the operator gives (EcsSubnets...)."""
    ec2 = rehearsal.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="wod-appliances", Description="appliances", VpcId=vpc)["GroupId"]
    rehearsal.parameters.update(EcsSubnets=subnet, EcsSecurityGroups=group)
    rehearsal.out(f"    the appliances' network (yours, not the stack's): {subnet}, {group}")


def stream_mappings(rehearsal: Any) -> list[str]:
    """moto's CloudFormation creates the event source mappings of the tables' streams, and moto then
    invokes their function itself, from inside the write that made the record (in the embedded AWS's
    DynamoDB lock, as nothing on AWS does): they are let go of here, and the rehearsal reads each
    stream with the mapped function's role (``rehearsal_iam.map_stream``). The mapped functions."""
    from moto.dynamodb.models import dynamodb_backends

    mapped = []
    for table in dynamodb_backends[ACCOUNT][rehearsal.region].tables.values():
        mappings = getattr(table, "lambda_event_source_mappings", {})
        mapped += [str(getattr(esm, "function_arn", arn)).rsplit(":", 1)[-1] for arn, esm in mappings.items()]
        mappings.clear()
    return mapped
