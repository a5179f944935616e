"""The hub host's configuration (infra/hub/jupyterhub_config_host.py): where the service token comes
from, and when the hub serves HTTPS to the world or HTTP to this machine only."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "infra" / "hub" / "jupyterhub_config_host.py"
TOKEN = "a" * 48


def load():
    spec = importlib.util.spec_from_file_location("wod_hub_host_config", CONFIG)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # without get_config: the helpers only
    return module


config = load()


def test_the_token_comes_from_a_file(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert config.hub_token({"WOD_HUB_TOKEN_FILE": str(tmp_path / "token")}) == TOKEN


def test_the_token_comes_from_secrets_manager_with_the_instance_role(aws):
    import boto3

    boto3.client("secretsmanager", region_name="eu-west-1").create_secret(Name="/wod/hub-token/paris",
                                                                          SecretString=TOKEN)
    env = {"WOD_HUB_TOKEN_SECRET": "/wod/hub-token/paris", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert config.hub_token(env) == TOKEN


@pytest.mark.parametrize("env, reason", [
    ({}, "set WOD_HUB_TOKEN_SECRET (Secrets Manager) or WOD_HUB_TOKEN_FILE"),
    ({"WOD_HUB_TOKEN_FILE": "/nonexistent/token"}, "WOD_HUB_TOKEN_FILE=/nonexistent/token: No such file"),
])
def test_no_token_stops_the_hub_saying_why(env, reason):
    with pytest.raises(SystemExit, match=re.escape(reason)):
        config.hub_token(env)


def test_an_unreadable_secret_stops_the_hub_naming_it(aws):
    with pytest.raises(SystemExit, match="cannot read the hub token from Secrets Manager \\(/wod/hub-token/x\\)"):
        config.hub_token({"WOD_HUB_TOKEN_SECRET": "/wod/hub-token/x", "AWS_DEFAULT_REGION": "eu-west-1"})


def test_a_short_token_is_refused(tmp_path):
    (tmp_path / "token").write_text("short")
    with pytest.raises(SystemExit, match="shorter than 32"):
        config.hub_token({"WOD_HUB_TOKEN_FILE": str(tmp_path / "token")})


def test_the_events_key_comes_from_a_file_or_a_secret_and_is_optional(tmp_path, aws):
    import boto3

    assert config.events_key({}) is None  # no relay of notebook events
    (tmp_path / "key").write_text(TOKEN + "\n")
    assert config.events_key({"WOD_EVENTS_KEY_FILE": str(tmp_path / "key")}) == TOKEN
    boto3.client("secretsmanager", region_name="eu-west-1").create_secret(Name="/wod/events-key/paris",
                                                                          SecretString=TOKEN)
    assert config.events_key({"WOD_EVENTS_KEY_SECRET": "/wod/events-key/paris",
                              "AWS_DEFAULT_REGION": "eu-west-1"}) == TOKEN
    with pytest.raises(SystemExit, match="cannot read the events key from Secrets Manager"):
        config.events_key({"WOD_EVENTS_KEY_SECRET": "/wod/events-key/x", "AWS_DEFAULT_REGION": "eu-west-1"})
    (tmp_path / "key").write_text("short")
    with pytest.raises(SystemExit, match="the events key from .* is shorter than 32"):
        config.events_key({"WOD_EVENTS_KEY_FILE": str(tmp_path / "key")})


def test_with_a_certificate_the_hub_serves_https_on_every_address():
    env = {"WOD_HUB_PORT": "443", "WOD_HUB_TLS_CERT": "/c.pem", "WOD_HUB_TLS_KEY": "/k.pem"}
    assert config.public_bind(env) == ("https://0.0.0.0:443", "/c.pem", "/k.pem")


def test_without_a_certificate_the_hub_serves_http_on_this_machine_only():
    assert config.public_bind({"WOD_HUB_PORT": "8123"}) == ("http://127.0.0.1:8123", "", "")


def test_a_certificate_without_its_key_is_refused():
    with pytest.raises(SystemExit, match="go together"):
        config.public_bind({"WOD_HUB_TLS_CERT": "/c.pem"})
