"""The hub's login rules (infra/jupyterhub/wod_login.py) and the production config's metadata block.

Both modules are loaded by path: infra/jupyterhub is not a package and the hub's own venv is
not this one (wod_login.py has no JupyterHub import on purpose).
"""
from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pynamodb.attributes import UTCDateTimeAttribute

from chalicelib.domain.passwords import generate_password, hash_password

HUB_DIR = Path(__file__).resolve().parents[2] / "infra" / "jupyterhub"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
PASSWORD = "Secr3tPassw"
HASH = hash_password(PASSWORD, iterations=1_000)  # fast, still the platform's format


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"wod_hub_{name}", HUB_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


wod_login = _load("wod_login")
production = _load("jupyterhub_config_production")


def expires(delta: timedelta) -> str:
    """expires_at exactly as pynamodb's UTCDateTimeAttribute stores it."""
    return UTCDateTimeAttribute().serialize(NOW + delta)


def item(**overrides) -> dict:
    base = {"id": "student207", "status": "active", "password_hash": HASH, "expires_at": expires(timedelta(hours=1))}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


# ---- password hashes ---------------------------------------------------------------------------

def test_verifies_hashes_made_by_the_platform():
    password = generate_password()
    encoded = hash_password(password)  # the real iteration count
    assert wod_login.verify_password(password, encoded)
    assert not wod_login.verify_password(password + "x", encoded)
    assert not wod_login.verify_password(password.upper(), encoded)


@pytest.mark.parametrize("encoded", [
    None, "", "pbkdf2_sha256", HASH.replace("pbkdf2_sha256", "pbkdf2_sha1"), HASH + "$extra",
    HASH.rsplit("$", 1)[0], "pbkdf2_sha256$abc$c2FsdA$ZGlnZXN0", "pbkdf2_sha256$-5$c2FsdA$ZGlnZXN0",
    "pbkdf2_sha256$10$" + HASH.split("$", 2)[2],            # below the iteration floor
    "pbkdf2_sha256$999999999$" + HASH.split("$", 2)[2],     # a CPU bomb
    "pbkdf2_sha256$1000$$" + HASH.rsplit("$", 1)[1],        # empty salt
    HASH.rsplit("$", 1)[0] + "$!!!not-base64!!!",
    HASH.rsplit("$", 1)[0] + "$" + HASH.rsplit("$", 1)[1][:-4],  # truncated digest
    12345, b"pbkdf2_sha256$1000$x$y",
], ids=["none", "empty", "scheme-only", "sha1", "extra-field", "no-digest", "bad-count", "negative-count",
        "low-count", "huge-count", "empty-salt", "not-base64", "truncated", "int", "bytes"])  # the same on every worker
def test_malformed_hashes_never_verify_and_never_raise(encoded):
    assert wod_login.verify_password(PASSWORD, encoded) is False


@pytest.mark.parametrize("password", [None, 42, b"Secr3tPassw", "", PASSWORD * 100])
def test_odd_passwords_are_refused(password):
    assert wod_login.verify_password(password, HASH) is False


# ---- check_login -----------------------------------------------------------------------------------

def test_active_student_with_right_password_logs_in():
    decision = wod_login.check_login(item(), PASSWORD, NOW)
    assert decision.ok and decision


@pytest.mark.parametrize("student, password, reason", [
    (item(), "wrong-password", "wrong password"),
    (item(), "", "wrong password"),
    (item(status="reserved"), PASSWORD, "not 'active'"),
    (item(status="free"), PASSWORD, "not 'active'"),
    (item(status="cleaning"), PASSWORD, "not 'active'"),
    (item(status="ACTIVE"), PASSWORD, "not 'active'"),
    (item(status=None), PASSWORD, "not 'active'"),
    (item(expires_at=expires(timedelta(0))), PASSWORD, "expired"),          # exactly at expires_at
    (item(expires_at=expires(-timedelta(microseconds=1))), PASSWORD, "expired"),
    (item(expires_at=expires(-timedelta(days=3))), PASSWORD, "expired"),
    (item(expires_at=None), PASSWORD, "expires_at"),
    (item(expires_at="next tuesday"), PASSWORD, "expires_at"),
    (item(expires_at="2026-06-01T13:00:00"), PASSWORD, "expires_at"),      # no zone: not trusted
    (item(password_hash=None), PASSWORD, "no password hash"),
    (item(password_hash=""), PASSWORD, "no password hash"),
    (item(password_hash="plaintext"), PASSWORD, "wrong password"),
    (item(password_hash=PASSWORD), PASSWORD, "wrong password"),             # a plaintext "hash"
    (None, PASSWORD, "no such student"),
    ({}, PASSWORD, "no such student"),
])
def test_refusals(student, password, reason):
    decision = wod_login.check_login(student, password, NOW)
    assert not decision.ok and not decision
    assert reason in decision.reason
    assert PASSWORD not in decision.reason


def test_expiry_boundary_is_to_the_microsecond():
    student = item(expires_at=expires(timedelta(microseconds=1)))
    assert wod_login.check_login(student, PASSWORD, NOW).ok
    assert not wod_login.check_login(student, PASSWORD, NOW + timedelta(microseconds=1)).ok


def test_an_existing_session_ends_with_the_reservation():
    lookup = FakeLookup({"student207": item(), "student208": item(id="student208", status="cleaning")})
    assert wod_login.session_still_valid("student207", lookup, now=NOW).ok
    assert not wod_login.session_still_valid("student207", lookup, now=NOW + timedelta(hours=1)).ok
    assert "not 'active'" in wod_login.session_still_valid("student208", lookup, now=NOW).reason
    assert "no such student" in wod_login.session_still_valid("student209", lookup, now=NOW).reason
    failing = wod_login.session_still_valid("student207", FakeLookup(error=RuntimeError("down")), now=NOW)
    assert not failing.ok and "lookup failed" in failing.reason
    # no password needed, and none checked: a session survives a password_hash change
    assert wod_login.check_session(item(password_hash=None), NOW).ok


def test_expires_at_round_trips_pynamodb_format():
    moment = datetime(2026, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)
    assert wod_login.parse_expires(UTCDateTimeAttribute().serialize(moment)) == moment
    assert wod_login.parse_expires("2026-12-31T23:59:59.123456+00:00") == moment


# ---- login(): names, lookup errors, throttle ---------------------------------------------------------------

class FakeLookup:
    def __init__(self, items=None, error=None):
        self.items, self.error, self.calls = items or {}, error, []

    def __call__(self, username):
        self.calls.append(username)
        if self.error:
            raise self.error
        return self.items.get(username)


@pytest.mark.parametrize("username", [
    None, "", "Student207", "207student", "-student", "student_207", "student 207", "student/207",
    "../etc", "a" * 33, "student207\n", "stüdent", "root;id", 207,
])
def test_bad_usernames_are_refused_without_a_lookup(username):
    lookup = FakeLookup({"student207": item()})
    decision = wod_login.login(username, PASSWORD, lookup, now=NOW)
    assert not decision.ok and decision.reason == "invalid username"
    assert lookup.calls == []


@pytest.mark.parametrize("username", ["student207", "a", "a" * 32, "wod-student-1"])
def test_good_usernames(username):
    assert wod_login.valid_username(username)
    assert wod_login.login(username, PASSWORD, FakeLookup({username: item(id=username)}), now=NOW).ok


def test_storage_errors_refuse_and_do_not_raise():
    from botocore.exceptions import ClientError, EndpointConnectionError

    for error in (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                  ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "GetItem"),
                  RuntimeError("boom")):
        decision = wod_login.login("student207", PASSWORD, FakeLookup(error=error), now=NOW)
        assert not decision.ok and "lookup failed" in decision.reason


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_failures_slow_the_next_attempts_down_doubling_up_to_the_longest_wait():
    clock = Clock()
    slow = wod_login.Slowdown(free=3, window=300, base=1.0, max_delay=8.0, clock=clock)
    keys = [("pair", "10.0.0.1", "student207"), ("name", "student207")]
    waits = []
    for _ in range(8):
        waits.append(slow.attempt(keys))
        slow.done(keys, failed=True)
        clock.t += 1
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]


def test_a_slowdown_never_refuses_and_a_success_clears_the_name():
    clock = Clock()
    slow = wod_login.Slowdown(free=2, window=300, base=1.0, max_delay=4.0, clock=clock)
    pair, name = ("pair", "10.0.0.1", "student207"), ("name", "student207")
    for _ in range(10):
        slow.attempt([pair, name])
        slow.done([pair, name], failed=True)
    assert slow.attempt([pair, name]) == 4.0  # waits, is then checked: a correct password gets in
    slow.done([pair, name], failed=False, cleared=(pair, name))
    assert slow.attempt([pair, name]) == 0


def test_attempts_under_way_count_so_parallel_guesses_are_slowed_too():
    slow = wod_login.Slowdown(free=3, window=300, base=1.0, max_delay=30.0, clock=Clock())
    keys = [("name", "student207")]
    waits = [slow.attempt(keys) for _ in range(6)]  # six at once, none finished yet
    assert waits == [0, 0, 0, 1, 2, 4]


def test_failures_count_only_inside_the_window():
    clock = Clock()
    slow = wod_login.Slowdown(free=3, window=60, base=1.0, max_delay=8.0, clock=clock)
    for _ in range(10):
        slow.attempt(["k"])
        slow.done(["k"], failed=True)
        clock.t += 31  # never three inside 60 s
    assert slow.attempt(["k"]) == 0


# ---- DynamoDB lookup ---------------------------------------------------------------------------------------------

class RecordingClient:
    def __init__(self, response):
        self.response, self.calls = response, []

    def get_item(self, **kwargs):
        self.calls.append(kwargs)
        return self.response


def test_lookup_is_a_consistent_get_item_on_the_id():
    client = RecordingClient({"Item": {"id": {"S": "student207"}, "status": {"S": "active"},
                                       "password_hash": {"S": HASH}, "expires_at": {"S": expires(timedelta(hours=1))}}})
    students = wod_login.DynamoStudents("wod-students", client=client)
    assert students("student207") == item()
    (call,) = client.calls
    assert call["TableName"] == "wod-students" and call["Key"] == {"id": {"S": "student207"}}
    assert call["ConsistentRead"] is True
    assert wod_login.DynamoStudents("t", client=RecordingClient({}))("student207") is None


# ---- production config: instance metadata block --------------------------------------------------------------------

def test_metadata_block_drops_student_traffic_to_imds():
    commands = production.metadata_block_commands(bridge="br-wod")
    v4 = [c for c in commands if c.startswith("iptables ")]
    v6 = [c for c in commands if c.startswith("ip6tables ")]
    assert v4 and v6
    for command in v4:
        assert "-i br-wod" in command and "-d 169.254.169.254/32" in command and "-j DROP" in command
        assert " DOCKER-USER " in command or " INPUT " in command
    assert any(" DOCKER-USER " in c for c in v4)  # routed container traffic
    assert any(" INPUT " in c for c in v4)        # traffic to the host itself
    assert all("-d fd00:ec2::254/128" in c and "-j DROP" in c for c in v6)
    for command in commands:  # idempotent: check before insert
        check, insert = command.split(" || ")
        assert " -C " in check and " -I " in insert
        assert check.replace(" -C ", " -I ").replace(" 2>/dev/null", "") == insert


def test_metadata_block_rejects_shell_injection():
    with pytest.raises(ValueError):
        production.metadata_block_commands(bridge="br0; curl evil")
    with pytest.raises(ValueError):
        production.metadata_block_commands(bridge="x" * 16)


def test_imds_hop_limit_is_one_with_tokens_required():
    command = production.imds_hardening_command("i-0123456789abcdef0")
    assert command.startswith("aws ec2 modify-instance-metadata-options ")
    assert "--instance-id i-0123456789abcdef0" in command
    assert "--http-put-response-hop-limit 1" in command and "--http-tokens required" in command
    with pytest.raises(ValueError):
        production.imds_hardening_command("i-1; rm -rf /")


# ---- sessions: a new password ends them; an unreadable table ends them after a grace ---------------------------

def test_a_session_ends_when_the_password_changes():
    sessions = wod_login.Sessions(grace=300, clock=Clock())
    lookup = FakeLookup({"student207": item()})
    login = wod_login.login("student207", PASSWORD, lookup, now=NOW)
    assert login.ok and login.credential and HASH not in login.credential
    sessions.opened("student207", login)
    assert sessions.check("student207", lookup, now=NOW).ok
    lookup.items["student207"] = item(password_hash=hash_password("N3wPassword", iterations=1_000))  # a reset
    ended = sessions.check("student207", lookup, now=NOW)
    assert not ended.ok and "password changed" in ended.reason
    relogin = wod_login.login("student207", "N3wPassword", lookup, now=NOW)
    sessions.opened("student207", relogin)
    assert sessions.check("student207", lookup, now=NOW).ok


def test_a_hub_that_forgot_adopts_the_current_password():
    sessions = wod_login.Sessions(grace=300, clock=Clock())
    lookup = FakeLookup({"student207": item()})
    assert sessions.check("student207", lookup, now=NOW).ok  # after a hub restart: nothing known yet
    lookup.items["student207"] = item(password_hash=hash_password("N3wPassword", iterations=1_000))
    assert not sessions.check("student207", lookup, now=NOW).ok


def test_an_unreadable_table_keeps_a_session_only_within_the_grace():
    clock = Clock()
    sessions = wod_login.Sessions(grace=300, clock=clock)
    good, down = FakeLookup({"student207": item()}), FakeLookup(error=RuntimeError("DynamoDB down"))
    assert sessions.check("student207", good, now=NOW).ok
    clock.t += 299
    kept = sessions.check("student207", down, now=NOW)
    assert kept.ok and "grace" in kept.reason
    clock.t += 2
    ended = sessions.check("student207", down, now=NOW)
    assert not ended.ok and "lookup failed" in ended.reason
    assert not wod_login.Sessions(grace=300, clock=Clock()).check("student208", down, now=NOW).ok  # never confirmed
