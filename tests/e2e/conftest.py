"""Fixtures for the browser tests: one local stack per module, one Chromium per module, a page per test."""
from __future__ import annotations

import os
import re
from glob import escape as glob_escape
from pathlib import Path

import pytest

from tests.stack import ROOT, LocalStack, write_workshop

CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")  # `make test` passes CHROMIUM
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"

# The workshops every e2e module's stack serves (one per test, so tests do not share seats).
SEATED = {"id": "WKSHP-E2E", "title": "Browser test workshop", "seats": 2, "beta": True}
WAITLIST = {"id": "WKSHP-E2EWAIT", "title": "Waitlist test workshop", "seats": 2, "beta": False}
FULL = {"id": "WKSHP-E2EFULL", "title": "One seat workshop", "seats": 1, "beta": False}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, and attach the stack's output to failures."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, LocalStack):
        report.sections.append(("python -m local", stack.diagnostics(40)))
    return report


@pytest.fixture(scope="module")
def workshops() -> dict[str, dict]:
    """The workshops the module's stack serves, one per test: ``seated`` (2 seats, beta), ``waitlist``
    (2 seats) and ``full`` (1 seat)."""
    return {"seated": dict(SEATED), "waitlist": dict(WAITLIST), "full": dict(FULL)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    workshops = root / "workshops"
    for spec in (SEATED, WAITLIST, FULL):
        write_workshop(workshops, spec["id"], seats=spec["seats"], beta=spec["beta"], title=spec["title"])
    with LocalStack(workshops, root / "state") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Errors the page reported: console.error (CSP violations among them) and uncaught exceptions.

    Failed resource loads are left out: a 422 form page and the missing favicon are expected.
    """

    def __init__(self):
        self.errors: list[str] = []

    def on_console(self, message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_page_error(self, error) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, request, console):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed and not page.is_closed():
            try:
                page.screenshot(path=str(screenshot_path(request.node.name, "failure")), full_page=True)
            except Exception:  # the screenshot is a diagnostic; never hide the real failure
                pass
        context.close()


def screenshot_path(test_name: str, step: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{step}")
    return ARTIFACTS / f"{safe}.png"


@pytest.fixture
def shot(request):
    """``shot(page, "step")`` saves a full-page screenshot to test-artifacts/e2e/<test>-<step>.png."""
    taken: list[Path] = []
    for stale in ARTIFACTS.glob(f"{glob_escape(request.node.name)}-*.png"):
        stale.unlink()  # screenshots of an earlier run of this test would mislead

    def take(page, step: str) -> Path:
        path = screenshot_path(request.node.name, step)
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0, f"empty screenshot {path}"
        taken.append(path)
        return path

    take.taken = taken
    return take
