"""Acting as a participant at a real JupyterHub, and cleaning up the Linux users it creates."""
from __future__ import annotations

import pwd
import subprocess

import requests


def login(hub_url: str, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """A participant at the login page: GET it (xsrf cookie), POST the form, follow redirects."""
    session = requests.Session()
    page = session.get(f"{hub_url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert "from your Workshops-on-Demand welcome email" in page.text  # the announcement
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
    response = session.post(f"{hub_url}/hub/login", timeout=60,
                            data={"username": name, "password": password, "_xsrf": xsrf})
    return session, response


def remove_linux_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["pkill", "-KILL", "-u", name], check=False)
    subprocess.run(["userdel", "--remove", "--force", name], check=False, capture_output=True)
