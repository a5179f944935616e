"""Fixtures for the browser tests: one local stack per module, one Chromium per module, a page per test.

The stack runs a real JupyterHub with the isolated spawner: every student of the test workshops
becomes a Linux user, removed when the module's stack is torn down.
"""
from __future__ import annotations

import os
import re
from glob import escape as glob_escape
from pathlib import Path

import nbformat
import pytest
import yaml

from chalicelib.domain.workshop_spec import WorkshopSpec
from tests.factory import write_workshop
from tests.hubtools import remove_linux_user
from tests.stack import ROOT, LocalStack

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
SURVEY = {"id": "WKSHP-E2ESURVEY", "title": "Survey test workshop", "seats": 1, "beta": False,
          "survey": [{"id": "level", "text": "Your level before the workshop", "choices": ["New", "Some", "Expert"]}]}

# The seated workshop's first notebook: markdown and a code cell, both rendered per student.
README = "0-ReadMeFirst.ipynb"
README_MARKDOWN = ["Welcome **{{ student_id }}**", "Run the cell below with Shift+Enter."]
README_CODE = "import getpass\nprint('hello from', '{{ student_id }}', 'as', getpass.getuser())"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def student_ids(folder: Path) -> list[str]:
    """The Linux users a workshop folder's seats can become (``seats: N``: ``<slug>-1 .. <slug>-N``),
    as the platform itself reads workshop.yaml."""
    spec = WorkshopSpec.model_validate(yaml.safe_load((folder / "workshop.yaml").read_text()))
    return spec.student_range.ids()


def write_seated_workshop(root: Path, spec: dict) -> Path:
    folder = write_workshop(root, spec["id"], seats=spec["seats"], beta=spec["beta"], title=spec["title"],
                            notebooks={README: README_MARKDOWN, "9-Conclusion.ipynb": ["Thank you!"]})
    notebook = nbformat.read(str(folder / README), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(README_CODE))
    notebook.metadata["kernelspec"] = KERNELSPEC  # as real workshop notebooks have: no kernel picker
    nbformat.write(notebook, str(folder / README))
    return folder


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
    (2 seats), ``full`` (1 seat) and ``survey`` (1 seat, a survey question of its own)."""
    return {"seated": dict(SEATED), "waitlist": dict(WAITLIST), "full": dict(FULL), "survey": dict(SURVEY)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    workshops = root / "workshops"
    folders = [write_seated_workshop(workshops, SEATED)]
    for spec in (WAITLIST, FULL, SURVEY):
        folders.append(write_workshop(workshops, spec["id"], seats=spec["seats"], beta=spec["beta"],
                                      title=spec["title"], **({"survey": spec["survey"]} if "survey" in spec else {})))
    students = [name for folder in folders for name in student_ids(folder)]
    assert students == ["e2e-1", "e2e-2", "e2ewait-1", "e2ewait-2", "e2efull-1", "e2esurvey-1"], students
    try:
        # Stopping waits for JupyterHub to stop the student servers (local/hub.py gives it 20 s and more):
        # a shorter stop_timeout would SIGKILL `python -m local` and orphan the hub.
        with LocalStack(workshops, root / "state", start_timeout=120, stop_timeout=60,
                        env={"WOD_CONFIRM_MINUTES": "15"}) as running:
            yield running
    finally:  # after the hub stopped their servers
        for name in students:
            remove_linux_user(name)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), f"{CHROMIUM} is not installed (`make test` installs Debian's chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Errors the pages reported: console.error (CSP violations among them) and uncaught exceptions,
    from every tab of the test's browser context (tabs opened by links included).

    Failed resource loads are left out: a 422 form page and the missing favicon are expected.
    ``errors`` holds "<message> [<script url>] (<page url>)" lines.
    """

    def __init__(self):
        self.entries: list[tuple[str, str]] = []  # (page url, message)
        self._attached: list = []

    @property
    def errors(self) -> list[str]:
        return [f"{text} ({url})" for url, text in self.entries]

    def attach(self, page) -> None:
        if any(seen is page for seen in self._attached):
            return
        self._attached.append(page)

        def on_console(message) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load resource"):
                self.entries.append((page.url, f"{message.text} [{message.location.get('url', '')}]"))

        def on_page_error(error) -> None:
            self.entries.append((page.url, f"uncaught: {error}"))

        page.on("console", on_console)
        page.on("pageerror", on_page_error)


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, request, console):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(30_000)  # generous: a loaded machine; only failures wait this long
    context.on("page", console.attach)  # this page and the tabs links open
    page = context.new_page()
    console.attach(page)  # no-op if the context's "page" event already did
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for n, tab in enumerate(context.pages):  # every tab: the failure may be in a popup
                if tab.is_closed():
                    continue
                try:
                    step = "failure" if n == 0 else f"failure-tab{n + 1}"
                    tab.screenshot(path=str(screenshot_path(request.node.name, step)), full_page=True)
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
