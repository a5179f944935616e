"""A local appliance that exits is reported at once (with what it said), not waited for."""
from __future__ import annotations

import time

import pytest

from chalicelib.adapters.appliances import LocalAppliances
from chalicelib.domain.errors import Unavailable
from tests.hubtools import free_ports


def test_an_appliance_that_exits_is_reported_with_its_last_words(tmp_path):
    (tmp_path / "WKSHP-X").mkdir()
    appliances = LocalAppliances(tmp_path, log_dir=tmp_path / "logs")
    [port] = free_ports(1)
    appliance = {"command": ["{python}", "-c", "import sys; print('cannot read server.py'); sys.exit(3)"],
                 "health_path": "/health"}
    appliances.start("WKSHP-X", "student1", appliance, port)
    deadline = time.monotonic() + 10
    while appliances.running["student1"].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(Unavailable, match=r"exited with code 3: cannot read server.py"):
        appliances.ready("student1", appliance, port)


def test_a_running_appliance_that_does_not_answer_yet_is_not_ready(tmp_path):
    (tmp_path / "WKSHP-X").mkdir()
    appliances = LocalAppliances(tmp_path, log_dir=tmp_path / "logs")
    [port] = free_ports(1)
    appliance = {"command": ["{python}", "-c", "import time; time.sleep(30)"], "health_path": "/health"}
    appliances.start("WKSHP-X", "student1", appliance, port)
    try:
        assert appliances.ready("student1", appliance, port) is False
    finally:
        appliances.stop("student1")
