"""Keys shared between frontend and backends, never in code or plain settings.

Local mode reads a generated JSON file (mode 0600); on AWS they come from SSM
Parameter Store (SecureString) through Powertools Parameters, cached.
"""
from __future__ import annotations

import json
from pathlib import Path

from chalicelib.domain.errors import Unavailable
from chalicelib.settings import Settings

NAMES = ("order_key", "callback_key", "hub_token", "admin_token")


def get_secret(settings: Settings, name: str) -> str:
    if settings.secrets_file:
        try:
            return json.loads(Path(settings.secrets_file).read_text())[name]
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"secret {name!r} is missing from {settings.secrets_file}") from exc
    from aws_lambda_powertools.utilities.parameters import get_parameter
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return get_parameter(f"{settings.secrets_prefix}/{name.replace('_', '-')}", decrypt=True, max_age=300)
    except GetParameterError as exc:
        raise Unavailable(f"secret {name!r} could not be read") from exc


def get_key(settings: Settings, name: str) -> bytes:
    return get_secret(settings, name).encode()
