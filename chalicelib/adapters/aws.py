"""boto3 clients, built lazily in one place (never at import time), and the SDK sessions they and
the tables' connections are made from."""
from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.settings import Settings


@cache
def _models() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


def sdk_session() -> Any:
    """A new botocore session that reads the SDK's service models through the process's one loader:
    each session otherwise parses them again (DynamoDB's alone is tens of milliseconds a client, and
    a process makes a client per table and per thread). Sessions are not shared between threads;
    the loader only caches what it read."""
    import botocore.session

    session = botocore.session.Session()
    session.register_component("data_loader", _models())
    return session


@cache
def client(service: str, region: str, endpoint: str | None):
    import boto3

    return boto3.session.Session(botocore_session=sdk_session()).client(service, region_name=region,
                                                                        endpoint_url=endpoint)


def client_for(service: str, settings: Settings):
    return client(service, settings.region, settings.aws_endpoint)
