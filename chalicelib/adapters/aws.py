"""boto3 clients, built lazily in one place (never at import time), and the SDK sessions they and
the tables' connections are made from."""
from __future__ import annotations

import threading
from functools import cache
from typing import Any

from chalicelib.settings import Settings


@cache
def _models() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


_threads = threading.local()


def sdk_session() -> Any:
    """This thread's botocore session, which reads the SDK's service models through the process's
    one loader. A session of its own per client would parse them again and register the SDK's
    handlers again (tens of milliseconds a client: DynamoDB's model alone; a process makes a client
    per table and per thread). A session is never shared between threads; the loader only caches
    what it read. Clients made from it take credentials from the environment: none is ever given
    keys of its own (they would be set on the thread's session, for every later client)."""
    session = getattr(_threads, "session", None)
    if session is None:
        import botocore.session

        session = botocore.session.Session()
        session.register_component("data_loader", _models())
        _threads.session = session
    return session


def boto3_session() -> Any:
    """This thread's boto3 session, on :func:`sdk_session` (made once: each boto3 session adds its
    handlers and data path to the botocore session it wraps)."""
    session = getattr(_threads, "boto3", None)
    if session is None:
        import boto3

        session = _threads.boto3 = boto3.session.Session(botocore_session=sdk_session())
    return session


@cache
def client(service: str, region: str, endpoint: str | None):
    return boto3_session().client(service, region_name=region, endpoint_url=endpoint)


def client_for(service: str, settings: Settings):
    return client(service, settings.region, settings.aws_endpoint)
