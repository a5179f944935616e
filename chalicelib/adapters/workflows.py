"""Start Step Functions executions, idempotently by name."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.orders import Order


class StepFunctionsStarter:
    def __init__(self, client_factory: Callable[[], Any], arns: Mapping[str, str]):
        self.client_factory, self.arns = client_factory, arns

    def __call__(self, order: Order) -> bool:
        """Start the action's workflow; False when an execution of that name exists already."""
        from botocore.exceptions import BotoCoreError, ClientError

        arn = self.arns.get(order.action)
        if not arn:
            raise Unavailable(f"no state machine is configured for {order.action}")
        payload = {"order": {"action": order.action, "workshop": order.workshop, "student": order.student,
                             "registration": order.registration, "scope": order.scope}}
        try:
            self.client_factory().start_execution(stateMachineArn=arn, name=order.execution_name,
                                                  input=json.dumps(payload))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return False
            raise Unavailable(f"Step Functions refused to start {order.execution_name}: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"Step Functions unreachable: {exc}") from exc
        return True
