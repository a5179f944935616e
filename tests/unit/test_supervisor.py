"""The local stack's watcher: a part that stops is reported, restarted if that is safe, else
the stack stops as a whole."""
from __future__ import annotations

import threading

from local.config import LocalConfig
from local.stack import Stack


def watch_once(stack: Stack, timeout: float = 10) -> None:
    watcher = threading.Thread(target=stack._watch, daemon=True)
    watcher.start()
    watcher.join(timeout)


def test_a_restartable_part_is_started_again(tmp_path, capsys):
    stack = Stack(LocalConfig(state_dir=tmp_path))
    alive = {"timer": False}
    restarted = threading.Event()

    def restart():
        alive["timer"] = True
        restarted.set()
        stack.stopping.set()  # end the watch loop for the test

    stack.watched = [("time checks", lambda: alive["timer"], restart)]
    watch_once(stack)
    assert restarted.is_set() and stack.failed is None
    out = capsys.readouterr().out
    assert "time checks stopped unexpectedly; restarting it" in out and "time checks is back." in out


def test_a_part_that_cannot_be_restarted_stops_the_stack_with_its_name(tmp_path, capsys):
    stack = Stack(LocalConfig(state_dir=tmp_path))
    stack.watched = [("JupyterHub", lambda: True, None), ("embedded AWS", lambda: False, None)]
    watch_once(stack)
    assert stack.stopping.is_set() and stack.failed == "embedded AWS"
    err = capsys.readouterr().err
    assert "embedded AWS stopped unexpectedly; stopping the platform" in err and "make run" in err


def test_a_failing_restart_is_tried_again(tmp_path, capsys):
    stack = Stack(LocalConfig(state_dir=tmp_path))
    attempts = []

    def restart():
        attempts.append(1)
        if len(attempts) == 2:
            stack.stopping.set()
        raise RuntimeError("port busy")

    stack.watched = [("JupyterHub", lambda: False, restart)]
    watch_once(stack, timeout=15)
    assert len(attempts) == 2 and stack.failed is None
