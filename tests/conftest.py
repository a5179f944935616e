"""Shared fixtures: an isolated AWS (moto), settings, a synced catalog, the app client."""
from __future__ import annotations

import email
import uuid
from collections import Counter
from email import policy
from pathlib import Path

import pytest

# First: sets the AWS test variables and deletes every WOD_* one before chalicelib is imported.
import tests.environment
from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import bootstrap as ctx
from chalicelib.services.catalog import sync_workshop
from chalicelib.settings import Settings
from local.config import ensure_secrets
from tests.factory import Clock, RecordingMailer, write_workshop

ROOT = Path(__file__).resolve().parent.parent
SENDER = "noreply@wod.local"
# the real JupyterHub fixture (integration and security tests); one hub host install per session
pytest_plugins = ["tests.hubtools", "tests.hubhost"]


# Modules that share something no two workers may hold at once: one install of the hub host; the
# browser tests' stacks, which make the same students (e2e-1, ...).
SHARED = {"tests/integration/test_hub_bootstrap.py": "installed-hub",
          "tests/integration/test_deploy_rehearsal.py": "installed-hub",
          "tests/e2e/test_browser.py": "e2e-students", "tests/e2e/test_admin_browser.py": "e2e-students"}


# The longest groups, longest first (a run's durations by group, `docs/testing.md`): they are
# handed out first, so that none of them starts last and runs alone at the end.
LONGEST = ["installed-hub", "e2e-students", "tests/integration/test_supervision.py",
           "tests/integration/test_provisioning.py", "tests/integration/test_dynamo_index.py",
           "tests/integration/test_full_life.py", "tests/integration/test_hub.py",
           "tests/integration/test_seat_contention.py", "tests/integration/test_idle_cull.py",
           "tests/security/test_seat_handover.py", "tests/security/test_hub_lockout.py",
           "tests/integration/test_durability.py"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``make test``: ``-n``, ``--dist loadgroup``), a module's tests run on one
    worker, so that its fixtures (a stack, a hub) are made once; the modules of a ``SHARED`` group
    run on the same worker, one after the other; the ``LONGEST`` groups first. Each test has its
    own ports and state otherwise."""
    groups = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is None:
            module = item.nodeid.split("::")[0]  # the file, as the rootdir sees it
            item.add_marker(pytest.mark.xdist_group(SHARED.get(module, module)))
            marker = item.get_closest_marker("xdist_group")
        groups[item] = marker.args[0] if marker.args else marker.kwargs.get("name", "")
    rank = {group: n for n, group in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(groups[item], len(LONGEST)))  # stable: a module keeps its order


@pytest.fixture(scope="session")
def embedded_aws():
    """moto's server behind the DynamoDB lock on a free port (started on first use)."""
    from local.aws import EmbeddedAws

    aws = EmbeddedAws("127.0.0.1", 0).start()
    yield aws
    aws.stop()


@pytest.fixture
def settings(tmp_path) -> Settings:
    secrets = tmp_path / "secrets.json"
    ensure_secrets(secrets)
    return Settings(table_prefix=f"t{uuid.uuid4().hex[:8]}", secrets_file=str(secrets), mail_transport="ses",
                    mail_from=f"Workshops-on-Demand <{SENDER}>", public_url="https://wod.example",
                    rate_limit_per_minute=0,  # every test participant comes from one address
                    mail_send_rate=1000,  # mail is not paced unless a test says so
                    confirm_minutes=0,  # tests about email confirmation turn it on
                    outbox_dispatch="inline",  # what a change owes is sent before the call returns
                    workshop_cache_seconds=0)  # every read sees the last write


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def embedded_dynamodb():
    """moto's DynamoDB in this process served as the embedded AWS serves it (``local/aws.py``): one
    request at a time (moto's backend is not thread-safe), queries answered from the key index and
    expressions parsed once (``local/dynamo_index.py``; ``WOD_DYNAMO_INDEX_CHECK=1`` compares every
    answer with moto's own walk), answers written as JSON (``local/dynamo_answers.py``). Undone at
    the end of the session."""
    import threading

    from moto.dynamodb.responses import DynamoHandler

    from local import dynamo_answers, dynamo_index

    lock = threading.RLock()
    real = DynamoHandler.call_action

    def one_at_a_time(self, *args, **kwargs):
        with lock:
            return real(self, *args, **kwargs)

    DynamoHandler.call_action = one_at_a_time
    was_installed = dynamo_index.installed()
    dynamo_index.install()
    answers_installed = dynamo_answers.install()
    yield
    DynamoHandler.call_action = real
    if answers_installed:
        dynamo_answers.uninstall()
    if not was_installed:
        dynamo_index.uninstall()


@pytest.fixture
def aws(embedded_dynamodb):
    import boto3
    from moto import mock_aws

    from chalicelib.adapters.aws import boto3_session

    with mock_aws():
        boto3.DEFAULT_SESSION = boto3_session()  # mock_aws dropped it: the thread's, on the shared service models
        boto3.client("ses", region_name=tests.environment.REGION).verify_email_identity(EmailAddress=SENDER)
        yield


@pytest.fixture
def platform(aws, settings, clock, tmp_path):
    """Tables created, context installed (SES mailer through moto), nothing synced yet."""
    import boto3

    from local.tables import create_tables

    context = ctx.build(settings, clock=clock)
    ctx.install(context)  # what the app's handlers use
    create_tables(boto3.client("dynamodb", region_name=tests.environment.REGION), settings.table_prefix)
    yield context
    ctx.install(None)


@pytest.fixture
def tables(platform):
    """The platform's tables, for reading and seeding items directly."""
    return platform.stores.tables


@pytest.fixture
def recording(platform):
    """Swap the platform's mailer for a recording one."""
    mailer = RecordingMailer()
    platform.mailer = mailer
    return mailer


@pytest.fixture
def sync(platform, tmp_path):
    """Write workshop folders and sync them: ``sync(("WKSHP-A", {"seats": 2}), ...)``."""

    def _sync(*workshops):
        root = tmp_path / "workshops"
        for workshop_id, fields in workshops:
            write_workshop(root, workshop_id, **fields)
        loaded, problems = load_catalog(root, platform.settings.locations.keys())
        assert problems == []
        return [sync_workshop(platform, w) for w in loaded]

    return _sync


@pytest.fixture
def client(platform):
    from chalice.test import Client

    from app import app

    with Client(app) as test_client:
        yield test_client


def ses_sent() -> list[email.message.EmailMessage]:
    """Every message sent through moto's SES, parsed."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][tests.environment.REGION]
    return [email.message_from_string(m.raw_data, policy=policy.default) for m in backend.sent_messages]


@pytest.fixture
def counted(monkeypatch) -> Counter[str]:
    """Every DynamoDB request the platform makes from now on, by operation."""
    from pynamodb.connection.base import Connection

    calls: Counter[str] = Counter()
    real = Connection._make_api_call

    def counting(self, operation_name, *args, **kwargs):
        calls[operation_name] += 1
        return real(self, operation_name, *args, **kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return calls
