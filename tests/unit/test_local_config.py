"""The local stack's settings: a value that cannot work is refused by name before anything starts."""
from __future__ import annotations

import pytest

from local.config import ConfigError, LocalConfig
from local.supervisor import Supervisor


@pytest.mark.parametrize("name, value, expected", [
    ("WOD_WEB_WORKERS", "abc", "expected a whole number"),
    ("WOD_WEB_WORKERS", "0", "from 1 to 64"),
    ("WOD_WORKER_THREADS", "0", "from 1 to 1024"),
    ("WOD_TICK_SECONDS", "0", "at least 0.1"),
    ("WOD_TICK_SECONDS", "-5", "at least 0.1"),
    ("WOD_APP_PORT", "70000", "from 1 to 65535"),
    ("WOD_HUB_NICE", "25", "from 0 to 19"),
    ("WOD_TIME_SCALE", "fast", "expected a number"),
    ("WOD_STUDENT_CPUS", "lots", "expected a number"),
    ("WOD_STUDENT_CPUS", "-1", "at least 0"),
    ("WOD_STUDENT_PROCESSES", "4", "at least 16"),
    ("WOD_STUDENT_MEMORY_MB", "2GB", "expected a whole number"),
])
def test_a_value_that_cannot_work_is_named(name, value, expected, tmp_path):
    with pytest.raises(ConfigError, match=rf"{name}='{value}': (expected )?{expected}"):
        LocalConfig.from_env({"WOD_STATE_DIR": str(tmp_path), name: value})


def test_defaults_and_good_values(tmp_path):
    config = LocalConfig.from_env({"WOD_STATE_DIR": str(tmp_path), "WOD_TICK_SECONDS": "0.5", "WOD_WEB_WORKERS": "2",
                                   "WOD_APP_PORT": ""})
    assert (config.tick_seconds, config.web_workers, config.app_port, config.worker_threads) == (0.5, 2, 8000, 32)


def test_the_settings_local_mode_gives_the_app_load_as_they_are(tmp_path, monkeypatch):
    """Every default local mode hands the app's settings is one they accept (a stack would not start)."""
    from chalicelib.settings import load_settings

    monkeypatch.delenv("WOD_REPORT_TO", raising=False)
    settings = load_settings(LocalConfig.from_env({"WOD_STATE_DIR": str(tmp_path)}).app_environment())
    assert settings.report_to == ("organisers@example.org",) and settings.mail_transport == "smtp"


def test_a_supervisor_that_started_nothing_leaves_the_pids_file_alone(tmp_path):
    pids = tmp_path / "run" / "parts.json"
    pids.parent.mkdir()
    pids.write_text('{"aws": 123}')  # a live stack's
    Supervisor(tmp_path).stop()
    assert pids.read_text() == '{"aws": 123}'
