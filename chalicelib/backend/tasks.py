"""The state machines, the order action each one carries out, and their Task functions: the one
map that ``app.py`` (one Lambda function per task), ``infra/template.py`` (ARN substitutions,
roles) and ``local/`` (the embedded Step Functions) all read.

A task ``<name>`` of machine ``<machine>`` is the Lambda function ``<machine>-<name in kebab
case>``, and ``${<Name in CamelCase>FunctionArn}`` in ``infra/statemachines/<machine>.asl.json``.
Light on purpose: importing it costs an API cold start nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class Machine:
    action: str  # the order action that starts it
    module: str  # where its tasks live: ``task(ctx, event) -> output``
    tasks: tuple[str, ...]


MACHINES: dict[str, Machine] = {
    "provision": Machine("CREATE", "chalicelib.services.provisioning",
                         ("prepare", "create_hub_user", "start_server", "check_ready", "deploy", "compensate")),
    "cleanup": Machine("CLEANUP", "chalicelib.services.cleanup", ("measure_completion", "teardown", "report")),
    "purge": Machine("PURGE", "chalicelib.services.cleanup", ("teardown", "report")),
    "reset": Machine("RESET", "chalicelib.services.provisioning", ("deploy",)),
    "warm": Machine("WARM", "chalicelib.services.warming", ("prepare", "start", "check_ready", "mark")),
}
ACTIONS = {machine: spec.action for machine, spec in MACHINES.items()}


def function_name(machine: str, task: str) -> str:
    """``("provision", "create_hub_user")`` -> ``provision-create-hub-user``."""
    return f"{machine}-{task.replace('_', '-')}"


def placeholder(task: str) -> str:
    """``create_hub_user`` -> ``CreateHubUser`` (as in ``${CreateHubUserFunctionArn}``)."""
    return "".join(part.capitalize() for part in task.split("_"))


def tasks() -> Iterator[tuple[str, str, str]]:
    """Every ``(machine, task, module)``."""
    for machine, spec in MACHINES.items():
        for task in spec.tasks:
            yield machine, task, spec.module


def run(module: str, task: str, event: dict[str, Any]) -> Any:
    """Carry out one task with this process's context (the Lambda handler of every task)."""
    from chalicelib.services.bootstrap import for_process

    return getattr(import_module(module), task)(for_process(), event)
