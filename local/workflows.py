"""Create the state machines of ``infra/statemachines`` on the embedded AWS, wired to the app's tasks.

``${<Name>FunctionArn}`` in ``<machine>.asl.json`` names the Lambda function
``<machine>-<name in kebab case>`` (``provision.asl.json``: ``${CreateHubUserFunctionArn}``
-> ``provision-create-hub-user``), the function names ``app.py`` declares.
"""
from __future__ import annotations

import re
from pathlib import Path

from chalicelib.backend.tasks import ACTIONS

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ROOT / "infra" / "statemachines"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/wod-stepfunctions"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)FunctionArn\}")


def function_name(machine: str, placeholder: str) -> str:
    return f"{machine}-" + re.sub(r"(?<!^)(?=[A-Z])", "-", placeholder).lower()


def definition(path: Path, region: str, account: str = ACCOUNT) -> str:
    machine = path.name.removesuffix(".asl.json")
    return PLACEHOLDER.sub(
        lambda m: f"arn:aws:lambda:{region}:{account}:function:{function_name(machine, m.group(1))}",
        path.read_text(),
    )


def create_state_machines(client, region: str, prefix: str = "wod") -> dict[str, str]:
    """Create (or find) each machine; return ``{action: arn}``."""
    existing = {m["name"]: m["stateMachineArn"] for m in client.list_state_machines()["stateMachines"]}
    arns = {}
    for path in sorted(MACHINES.glob("*.asl.json")):
        machine = path.name.removesuffix(".asl.json")
        name = f"{prefix}-{machine}"
        arn = existing.get(name) or client.create_state_machine(
            name=name, definition=definition(path, region), roleArn=ROLE)["stateMachineArn"]
        arns[ACTIONS[machine]] = arn
    return arns


def register_tasks(dispatcher, app) -> list[str]:
    """Every ``@app.lambda_function`` becomes invokable by its name."""
    for function in app.pure_lambda_functions:
        dispatcher.register(function.name, function)
    return dispatcher.function_names
