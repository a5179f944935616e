"""Where the rehearsal reads or completes what moto's CloudFormation made (``infra/rehearsal.py``)."""
from __future__ import annotations

from typing import Any

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

