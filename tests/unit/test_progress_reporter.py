"""The kernel's progress reporter (infra/jupyterhub/progress): which cell ran, and whether it was a check."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra" / "jupyterhub" / "progress"))
from wod_progress import Notebook, Reporter, shown_path

CHECK = "assert answer == 42, 'Hint: six times seven'"


def notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Exercise"), nbformat.v4.new_code_cell("answer = 42"),
                nbformat.v4.new_code_cell(CHECK, metadata={"nbgrader": {"grade": True, "solution": False,
                                                                         "grade_id": "q1", "points": 1}})]
    path = tmp_path / "1-Exercise.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_cell_is_found_by_its_id_or_its_source_and_a_check_by_its_marks(tmp_path):
    path = notebook(tmp_path)
    cells = json.loads(path.read_text())["cells"]
    book = Notebook(path)
    assert book.find(cells[1]["id"], "answer = 42") == (1, None)
    assert book.find(cells[2]["id"], CHECK) == (2, "q1")
    assert book.find(None, CHECK + "\n") == (2, "q1")
    # the check cell edited before it ran is not the check any more
    assert book.find(cells[2]["id"], "assert True") == (2, None)
    assert book.find(None, "print('elsewhere')") == (None, None)


def test_a_notebook_that_is_not_there_or_not_json_finds_nothing(tmp_path):
    assert Notebook(tmp_path / "missing.ipynb").find(None, "x = 1") == (None, None)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert Notebook(broken).find(None, "x = 1") == (None, None)


def test_events_wait_while_the_hub_does_not_answer_and_are_bounded(tmp_path):
    reporter = Reporter("http://127.0.0.1:9/hub/api/wod/events", "token", "1-Exercise.ipynb", background=False)
    for index in range(600):
        reporter.add("executed", cell=index)
    assert reporter.flush() is False  # nothing listens on port 9
    assert len(reporter.queue) == 500 and reporter.queue[-1]["cell"] == 599
    assert all(e["notebook"] == "1-Exercise.ipynb" for e in reporter.queue)


def test_the_notebook_is_named_as_the_participant_sees_it():
    assert shown_path("/home/student7/labs/1-Exercise.ipynb", Path("/home/student7")) == "labs/1-Exercise.ipynb"
    assert shown_path("1-Exercise.ipynb", Path("/home/student7")) == "1-Exercise.ipynb"
    assert shown_path("/srv/other.ipynb", Path("/home/student7")) == "/srv/other.ipynb"


def test_odd_marks_or_a_huge_notebook_find_nothing_and_raise_nothing(tmp_path):
    odd = tmp_path / "odd.ipynb"
    odd.write_text('{"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {"nbgrader": true}}]}')
    assert Notebook(odd).find(None, "x = 1") == (0, None)
    huge = tmp_path / "huge.ipynb"
    huge.write_text('{"cells": [], "pad": "' + "x" * (5 * 1024 * 1024) + '"}')
    assert Notebook(huge).find(None, "x = 1") == (None, None)
    assert len(shown_path("/srv/" + "a" * 400 + ".ipynb", Path("/home/s"))) == 200


def test_the_facilitators_message_is_shown_once_per_message():
    reporter = Reporter("http://127.0.0.1:9/", "token", None, background=False)
    assert reporter.unseen_message() is None
    reporter._read_message(b'{"taken": 1, "message": {"text": "Break until 10:30", "at": "2026-12-05T10:00:00"}}')
    assert reporter.unseen_message() == "Break until 10:30"
    assert reporter.unseen_message() is None
    reporter._read_message(b'{"taken": 1, "message": {"text": "Back!", "at": "2026-12-05T10:30:00"}}')
    assert reporter.unseen_message() == "Back!"
    reporter._read_message(b"not json")
    reporter._read_message(b'{"message": {"text": 5}}')
    assert reporter.unseen_message() is None


class Hub:
    """A stand-in for the hub's relay on a local port, answering with ``status`` (``cut``: a reply cut in
    its status line, as a proxy killed mid-answer leaves it); it keeps the batches it was sent."""

    def __init__(self, status):
        import socketserver
        import threading
        from http.server import BaseHTTPRequestHandler

        hub = self
        self.status, self.batches = status, []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hub.batches.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if hub.status == "cut":
                    self.wfile.write(b"HTTP/1.1 2")
                    return
                self.send_response(hub.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api/wod/events"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("status", "state", "says", "kept"), [
    (200, "up", "Your hand is up", 0),
    (409, "refused", "press Ask for help on your registration page", 0),  # the workshop ended: dropped
    (403, "refused", "could not be raised", 0),
    (503, "waiting", "your hand goes up as soon as it does", 3),
    (429, "waiting", "your hand goes up as soon as it does", 3),
    ("cut", "waiting", "your hand goes up as soon as it does", 3),
])
def test_a_raised_hand_says_what_became_of_it(status, state, says, kept):
    import wod_progress
    hub = Hub(status)
    try:
        reporter = Reporter(hub.url, "token", "1-Exercise.ipynb", background=False)
        reporter.add("executed", cell=1)
        reporter.add("executed", cell=2)
        said = reporter.raise_hand()
        assert says in said and reporter.hand_state == state
        # what the kernel reported before the hand went first, in the same batch, the hand last
        assert [e["kind"] for e in hub.batches[0]["events"]] == ["executed", "executed", "hand"]
        assert len(reporter.queue) == kept
        wod_progress._reporter = reporter
        assert wod_progress.hand_state() == state  # what the toolbar button reads back
    finally:
        wod_progress._reporter = None
        hub.close()


def test_the_sending_thread_outlives_a_reply_cut_in_its_status_line():
    hub = Hub("cut")
    try:
        reporter = Reporter(hub.url, "token", None, background=False)
        reporter.add("executed", cell=1)
        assert reporter.flush() is False and len(reporter.queue) == 1  # kept for the next round
        hub.status = 200
        assert reporter.flush() is True and reporter.queue == []
    finally:
        hub.close()
