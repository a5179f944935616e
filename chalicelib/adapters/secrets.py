"""Keys shared between frontend and backends, never in code, settings or the template.

Local mode reads a generated JSON file (mode 0600). On AWS they are Secrets Manager
secrets the stack generates (``infra/template.py``), read through Powertools
Parameters and cached for five minutes: ``<prefix>/admin-token``, ``<prefix>/link-key`` and
``<prefix>/badge-key`` (one per platform: the second one signs participants' links, the third is
what the issuer's Ed25519 key of the verifiable badges is derived from) and, one per location,
``<prefix>/order-key/<location>`` (the frontend signs that location's orders),
``<prefix>/callback-key/<location>`` (that location's backend signs its callbacks) and
``<prefix>/hub-token/<location>`` (the service token on that location's JupyterHub) and
``<prefix>/events-key/<location>`` (that location's hub signs the notebook events it relays to the
live room; the API function holds this key, never the hub token). A backend
holds only its own location's keys, so it can neither forge another location's orders nor
report on another location's registrations.
"""
from __future__ import annotations

import json
from pathlib import Path

from chalicelib.domain.errors import Unavailable
from chalicelib.settings import Settings

NAMES = ("order_key", "callback_key", "hub_token", "events_key", "admin_token", "link_key", "badge_key")
PER_LOCATION = ("order_key", "callback_key", "hub_token", "events_key")
LOCAL_PER_LOCATION = ("order_key", "callback_key")  # the local file has one hub (one hub token, one events key)
CACHE_SECONDS = 300


def secret_id(settings: Settings, name: str, location: str | None = None) -> str:
    """The Secrets Manager name of a secret (what the template creates)."""
    base = f"{settings.secrets_prefix}/{name.replace('_', '-')}"
    return f"{base}/{location or settings.location}" if name in PER_LOCATION else base


def file_key(name: str, location: str) -> str:
    """The name of a secret in the local secrets file: ``order_key/<location>``, ``hub_token``."""
    return f"{name}/{location}" if name in LOCAL_PER_LOCATION else name


def get_secret(settings: Settings, name: str, location: str | None = None) -> str:
    """``location``: whose key (per-location secrets); default this stack's own (``WOD_LOCATION``)."""
    if name not in NAMES:
        raise ValueError(f"unknown secret {name!r}")
    location = location or settings.location
    if settings.secrets_file:
        key = file_key(name, location)
        try:
            value = json.loads(Path(settings.secrets_file).read_text())[key]
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"secret {key!r} is missing from {settings.secrets_file}") from exc
        if not isinstance(value, str):
            raise Unavailable(f"secret {key!r} in {settings.secrets_file} is not a string")
        return value
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return parameters.get_secret(secret_id(settings, name, location), max_age=CACHE_SECONDS)
    except GetParameterError as exc:
        raise Unavailable(f"secret {name!r} of location {location!r} could not be read") from exc


def get_key(settings: Settings, name: str, location: str | None = None) -> bytes:
    return get_secret(settings, name, location).encode()
