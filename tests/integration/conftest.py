"""Integration fixtures: a context whose tables live on the embedded AWS server."""
from __future__ import annotations

import uuid

import boto3
import pytest

from chalicelib.services import bootstrap as ctx
from chalicelib.settings import Settings
from local.config import ensure_secrets
from local.tables import create_tables
from tests.factory import RecordingMailer


@pytest.fixture
def served(embedded_aws, tmp_path):
    """A context whose tables live on the embedded AWS server (real HTTP, real lock)."""
    secrets = tmp_path / "secrets.json"
    ensure_secrets(secrets)
    settings = Settings(table_prefix=f"i{uuid.uuid4().hex[:8]}", aws_endpoint=embedded_aws.endpoint,
                        secrets_file=str(secrets), mail_send_rate=1000, confirm_minutes=0,
                        outbox_dispatch="inline", workshop_cache_seconds=0)  # as tests/conftest.py's settings
    context = ctx.build(settings, mailer=RecordingMailer())
    ctx.install(context)
    create_tables(boto3.client("dynamodb", endpoint_url=embedded_aws.endpoint, region_name="us-east-1"),
                  settings.table_prefix)
    yield context
    ctx.install(None)
