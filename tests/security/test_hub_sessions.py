"""A new password ends the sessions opened with the old one: after a reset or resent credentials,
whoever still holds the previous hub cookie (a shared screen, a stolen laptop) is sent back to the
login page, and the new password works. Real JupyterHub, its proxy, the platform's authenticator."""
from __future__ import annotations

import pytest

from chalicelib.domain.passwords import hash_password
from tests.hubtools import PASSWORD_ITERATIONS, new_name, open_session

pytestmark = pytest.mark.timeout(240)


def test_a_new_password_ends_the_old_session(hub):
    name, old, new = new_name(), "Old-passw0rd", "New-passw0rd"
    hub.created.append(name)
    hub.api.create_user(name)
    hub.students.put(name, old)
    stolen = open_session(hub.url, name, old)
    hub.students.client.update_item(  # what a RESET or a resend stores: a new hash
        TableName=hub.students.table, Key={"id": {"S": name}}, UpdateExpression="SET password_hash = :h",
        ExpressionAttributeValues={":h": {"S": hash_password(new, PASSWORD_ITERATIONS)}})
    spawn = stolen.get(f"{hub.url}/hub/spawn/{name}", allow_redirects=False, timeout=30)  # re-checked before a spawn
    assert spawn.status_code in (302, 403), spawn.status_code
    if spawn.status_code == 302:
        assert "/hub/login" in spawn.headers["Location"]
    assert hub.api.http.get(f"{hub.api_url}/users/{name}", timeout=10).json()["servers"] == {}
    assert f"WoD session of {name} ended: the password changed" in hub.log_file.read_text()
    open_session(hub.url, name, new)
