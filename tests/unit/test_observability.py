"""Metrics, log keys and a cold start that imports only what it uses (chalicelib.observability)."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from chalicelib import observability
from infra import operations, template


def emf_lines(text: str) -> list[dict]:
    return [doc for doc in (json.loads(line) for line in text.splitlines() if line.startswith("{")) if "_aws" in doc]


@pytest.fixture
def metrics_on(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    observability.metrics.clear_metrics()
    yield
    observability.metrics.clear_metrics()


def test_metrics_are_flushed_after_each_invocation_where_the_alarm_looks(metrics_on, capsys):
    def handler(event):
        observability.count("RejectedOrders")
        observability.seconds("ProvisioningDuration", 4.25)
        return "done"

    assert observability.around(SimpleNamespace(event={}, context=None), handler) == "done"
    [doc] = emf_lines(capsys.readouterr().out)
    spec = doc["_aws"]["CloudWatchMetrics"][0]
    assert {m["Name"] for m in spec["Metrics"]} == {"RejectedOrders", "ProvisioningDuration"}
    assert doc["RejectedOrders"] == [1.0] and doc["ProvisioningDuration"] == [4.25]
    alarm = template.platform_resources()["RejectedOrdersAlarm"]["Properties"]
    assert spec["Namespace"] == alarm["Namespace"]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"service": doc["service"]}


def test_a_gauge_carries_its_own_dimension(metrics_on, capsys):
    observability.gauge("SeatsFree", 7, workshop="WKSHP-A")
    [doc] = emf_lines(capsys.readouterr().out)
    assert doc["SeatsFree"] == [7.0] and doc["workshop"] == "WKSHP-A"


def test_disabled_metrics_print_nothing(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    observability.gauge("SeatsFree", 7, workshop="WKSHP-A")
    observability.around(SimpleNamespace(event={}, context=None), lambda e: observability.count("Registrations"))
    assert emf_lines(capsys.readouterr().out) == []


def test_no_metrics_no_output(metrics_on, capsys):
    observability.around(SimpleNamespace(event={}, context=None), lambda event: None)
    assert emf_lines(capsys.readouterr().out) == []


@pytest.fixture
def log_output():
    """What the Powertools logger writes (its handler holds the stream it was created with)."""
    buffer = io.StringIO()
    handler = next(h for h in observability.logger.handlers if isinstance(h, logging.StreamHandler))
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def test_log_lines_carry_the_registration_student_and_workshop_of_the_event(log_output):
    event = SimpleNamespace(event={"order": {"registration": "r-1", "student": "wkshp-a-3", "workshop": "WKSHP-A",
                                             "password": "never logged"}},
                            context=SimpleNamespace(function_name="wod-provision-deploy"))
    observability.around(event, lambda e: observability.logger.warning("deploying"))
    observability.logger.warning("after")
    during, after = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert (during["registration"], during["student"], during["workshop"]) == ("r-1", "wkshp-a-3", "WKSHP-A")
    assert during["function"] == "wod-provision-deploy"
    assert "password" not in during and "never logged" not in json.dumps(during)
    assert "registration" not in after and "function" not in after


def test_an_http_request_is_described_by_its_route_and_registration():
    request = SimpleNamespace(method="GET", path="/registrations/{registration_id}", context=None,
                              to_dict=lambda: {"uri_params": {"registration_id": "abc"}})
    assert observability._describe(request)[1] == {"route": "GET /registrations/{registration_id}",
                                                   "registration": "abc"}


def test_tracing_is_off_outside_lambda(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert not observability.tracing()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wod-api")
    assert observability.tracing()
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not observability.tracing()


def test_importing_the_app_loads_no_store_template_or_service_module():
    """A Lambda's cold start imports ``app.py``: the handlers import what they use when first called."""
    code = ("import sys, app; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pynamodb', 'jinja2', 'boto3') or m.startswith(('chalicelib.services', 'chalicelib.store')))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_a_compensated_provisioning_counts_where_its_alarm_looks(metrics_on, capsys, monkeypatch):
    """The provision machine ends in success after compensating, so this metric, not the failed-executions
    alarm, is what tells the organiser."""
    from chalicelib.services import provisioning

    told: list[dict] = []
    monkeypatch.setattr(provisioning, "holds", lambda ctx, order: False)  # nothing to undo on the hub
    monkeypatch.setattr(provisioning, "callback", lambda ctx, body: told.append(body))
    event = {"order": {"registration": "r1", "student": "student1"}, "error": {"Error": "HubUnavailable"}}
    observability.around(SimpleNamespace(event={}, context=None), lambda e: provisioning.compensate(None, event))
    [doc] = emf_lines(capsys.readouterr().out)
    assert doc["ProvisioningCompensated"] == [1.0] and told[0]["outcome"] == "failed"
    alarm = operations.alarms()["ProvisioningCompensatedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                                                         "ProvisioningCompensated")
