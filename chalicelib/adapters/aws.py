"""boto3 clients, built lazily in one place (never at import time)."""
from __future__ import annotations

from functools import cache

from chalicelib.settings import Settings


@cache
def client(service: str, region: str, endpoint: str | None):
    import boto3

    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint)


def client_for(service: str, settings: Settings):
    return client(service, settings.region, settings.aws_endpoint)
