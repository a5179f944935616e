"""Exercise checks as nbgrader marks them (chalicelib/domain/checks.py): what a participant gets,
what counts as passed, and completion from checks (cells only where a workshop has none)."""
from __future__ import annotations

import copy

import pytest

from chalicelib.domain.checks import STUB, InvalidCheck, checks, completion, passed, release


def code(source: str, nbgrader: dict | None = None, *, ran: int | None = None, error: bool = False) -> dict:
    outputs = [{"output_type": "error", "ename": "AssertionError", "evalue": "hint", "traceback": []}] if error else []
    metadata = {"nbgrader": nbgrader} if nbgrader is not None else {}
    return {"cell_type": "code", "source": source, "metadata": metadata, "outputs": outputs, "execution_count": ran}


SOLUTION = code("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
                {"solution": True, "grade": False, "grade_id": "double-answer"})
CHECK = code('assert double(2) == 4, "double(2) should be 4"\n### BEGIN HIDDEN TESTS\nassert double(-1) == -2\n'
             "### END HIDDEN TESTS\n", {"grade": True, "solution": False, "grade_id": "double", "points": 2})
OTHER = code('assert total([1, 2]) == 3, "add them up"', {"grade": True, "solution": False, "grade_id": "total"})


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_a_participant_gets_the_stub_and_the_visible_tests_only():
    released = release(copy.deepcopy(notebook(SOLUTION, CHECK)))
    solution, check = released["cells"]
    assert solution["source"] == "def double(x):\n    " + STUB.replace("\n", "\n    ") + "\n"
    assert "return 2 * x" not in solution["source"]
    assert check["source"] == 'assert double(2) == 4, "double(2) should be 4"\n'
    assert "double(-1)" not in check["source"]


def test_a_check_passes_only_when_it_ran_unchanged_without_an_error():
    workshop = checks(notebook(SOLUTION, CHECK, OTHER))
    assert [(c.grade_id, c.points) for c in workshop] == [("double", 2.0), ("total", 1.0)]
    mine = release(copy.deepcopy(notebook(SOLUTION, CHECK, OTHER)))
    assert passed(mine, workshop) == set()  # nothing ran
    mine["cells"][1]["execution_count"] = 3
    mine["cells"][2].update(execution_count=4, outputs=code("", error=True)["outputs"])
    assert passed(mine, workshop) == {"double"}  # the second raised its hint
    mine["cells"][2].update(source="pass", outputs=[])  # emptied, then ran: not the check any more
    assert passed(mine, workshop) == {"double"}


def test_completion_counts_checks_and_falls_back_to_cells_without_any():
    originals = [notebook(SOLUTION, CHECK), notebook(code("x = 1"), OTHER)]
    mine = [release(copy.deepcopy(nb)) for nb in originals]
    for nb in mine:
        for cell in nb["cells"]:
            cell["execution_count"] = 1  # every cell ran: cells would say 100 %
    mine[1]["cells"][1]["outputs"] = code("", error=True)["outputs"]
    done = completion(mine, originals)
    assert (done.percent, done.basis, done.passed, done.total) == (50.0, "checks", 1, 2)
    plain = [notebook(code("x = 1", ran=1), code("y = 2"))]
    assert completion(plain, plain) == completion(plain, plain).__class__(50.0, "cells")


@pytest.mark.parametrize(("cells", "message"), [
    ((CHECK, CHECK), "used by another check"),
    ((code("assert True", {"grade": True, "solution": False}),), "needs nbgrader.grade_id"),
    ((code("assert True", {"grade": True, "solution": False, "grade_id": "a", "points": -1}),), "points must be"),
    ((code("assert x == {{ student_id }}", {"grade": True, "grade_id": "a"}),), "cannot be a template"),
    ((code("### BEGIN SOLUTION\nx = 1\n", {"solution": True}),), "never closed"),
    ((code("x = 1\n### END HIDDEN TESTS", {"grade": True, "grade_id": "a"}),), "without BEGIN HIDDEN TESTS"),
    ((code("assert True", {"grade": True, "grade_id": "a", "points": float("inf")}),), "points must be"),
    ((code("assert True", {"grade": True, "grade_id": "Exercise 1"}),), "the name the live room is told"),
    ((code("assert True", {"grade": True, "grade_id": "é"}),), "is not 1 to 64 letters"),
])
def test_a_badly_marked_notebook_is_named(cells, message):
    with pytest.raises(InvalidCheck, match=message) as refused:
        checks(notebook(*cells), "1-Intro.ipynb")
    assert str(refused.value).startswith("1-Intro.ipynb: cells[")


def test_solution_cells_are_cut_as_nbgrader_cuts_them():
    whole = code("answer = 42", {"solution": True, "grade_id": "w"})  # no region: the whole cell
    hashes = code("x = 1\n# BEGIN SOLUTION\nx = 2\n# END SOLUTION", {"solution": True, "grade_id": "h"})
    prose = {"cell_type": "markdown", "source": "The answer is 42.", "metadata": {"nbgrader": {"solution": True}}}
    released = release(notebook(whole, hashes, prose))["cells"]
    assert released[0]["source"] == STUB
    assert released[1]["source"] == "x = 1\n" + STUB
    assert released[2]["source"] == "YOUR ANSWER HERE" and "outputs" not in released[2]


def test_a_check_written_with_windows_line_ends_still_passes():
    crlf = code('assert total == 3, "add them"\r\nprint("ok")', {"grade": True, "solution": False, "grade_id": "t"})
    mine = notebook(code('assert total == 3, "add them"\nprint("ok")', {"grade_id": "t"}, ran=2))
    assert passed(mine, checks(notebook(crlf))) == {"t"}


def test_a_mangled_participant_notebook_counts_nothing_and_raises_nothing():
    workshop = checks(notebook(CHECK))
    for mangled in ({"cells": "x"}, {"cells": ["x", {"metadata": "m"}]}, "not a notebook",
                    {"cells": [dict(code("x", {"grade_id": "double"}, ran=1), outputs=["boom"])]}):
        assert passed(mangled, workshop) == set()
        assert 0.0 <= completion([mangled], [notebook(code("x = 1"))]).percent <= 100.0  # no checks: cells
