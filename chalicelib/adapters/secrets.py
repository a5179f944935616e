"""Keys shared between frontend and backends, never in code, settings or the template.

Local mode reads a generated JSON file (mode 0600). On AWS they are Secrets Manager
secrets the stack generates (``infra/template.py``), read through Powertools
Parameters and cached for five minutes: ``<prefix>/order-key``, ``<prefix>/callback-key``,
``<prefix>/admin-token``, ``<prefix>/link-key`` (one per platform: the last one signs
participants' links) and ``<prefix>/hub-token/<location>`` (one
per location's JupyterHub).
"""
from __future__ import annotations

import json
from pathlib import Path

from chalicelib.domain.errors import Unavailable
from chalicelib.settings import Settings

NAMES = ("order_key", "callback_key", "hub_token", "admin_token", "link_key")
PER_LOCATION = ("hub_token",)
CACHE_SECONDS = 300


def secret_id(settings: Settings, name: str) -> str:
    """The Secrets Manager name of a secret (what the template creates)."""
    base = f"{settings.secrets_prefix}/{name.replace('_', '-')}"
    return f"{base}/{settings.location}" if name in PER_LOCATION else base


def get_secret(settings: Settings, name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown secret {name!r}")
    if settings.secrets_file:
        try:
            return json.loads(Path(settings.secrets_file).read_text())[name]
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"secret {name!r} is missing from {settings.secrets_file}") from exc
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return parameters.get_secret(secret_id(settings, name), max_age=CACHE_SECONDS)
    except GetParameterError as exc:
        raise Unavailable(f"secret {name!r} could not be read") from exc


def get_key(settings: Settings, name: str) -> bytes:
    return get_secret(settings, name).encode()
