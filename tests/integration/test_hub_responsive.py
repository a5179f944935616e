"""A busy hub still answers: making students' Linux accounts runs off JupyterHub's event loop, so a
burst of new participants does not hold up every other request (the platform's status checks, logins)."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from local.hub import HUB_VENV, NODE_BIN
from tests.hubtools import new_name, running_hub

ACCOUNTS = 16
USERADD_SECONDS = 6  # each account takes this long to make, at least
# A request that waited for an account would wait for a useradd: up to USERADD_SECONDS. One that
# did not answers within a fraction of that, also on a machine busy with other tests.
ANSWERED_WITHIN = USERADD_SECONDS / 2


def test_the_hub_answers_while_accounts_are_made(embedded_aws, tmp_path):
    slow = tmp_path / "bin"  # a useradd that takes its time, first on the hub's PATH
    slow.mkdir()
    useradd = slow / "useradd"
    useradd.write_text(f"#!/bin/sh\nsleep {USERADD_SECONDS}\nexec /usr/sbin/useradd \"$@\"\n")
    useradd.chmod(0o755)
    path = os.pathsep.join([str(slow), str(HUB_VENV / "bin"), str(NODE_BIN), "/usr/sbin:/usr/bin:/sbin:/bin"])
    with running_hub(embedded_aws, tmp_path / "hub", env={"PATH": path}) as hub:
        names = [new_name() for _ in range(ACCOUNTS)]
        hub.created += names
        answered: list[float] = []
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            made = [pool.submit(hub.api.http.post, f"{hub.api_url}/users/{name}", timeout=300) for name in names]
            while not all(future.done() for future in made):
                asked = time.monotonic()
                response = hub.api.http.get(f"{hub.api_url}/users/{names[0]}", timeout=60)
                answered.append(time.monotonic() - asked)
                assert response.status_code in (200, 404), response.text
                time.sleep(0.1)
        took = time.monotonic() - started
        assert [future.result().status_code for future in made] == [201] * ACCOUNTS
        print(f"{ACCOUNTS} accounts in {took:.1f} s; {len(answered)} requests meanwhile, the slowest "
              f"{max(answered):.2f} s")
        assert took >= USERADD_SECONDS and len(answered) >= 5  # the requests were made while accounts were
        assert max(answered) < ANSWERED_WITHIN  # never waiting for an account
