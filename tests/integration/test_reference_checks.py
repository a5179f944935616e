"""``catalog check`` runs each notebook with exercise checks in a real Jupyter kernel (the hub's
Python), reference solutions in place, and names a check that fails or never runs; then the
participant's copy, and names a check that passes on it. The kernel sees no secret of the machine."""
from __future__ import annotations

import nbformat

from chalicelib.catalog.__main__ import main as catalog_main
from tests.factory import write_workshop


def _lab(folder, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, str(folder / "1-Lab.ipynb"))


def solution(code: str, grade_id: str):
    cell = nbformat.v4.new_code_cell(f"### BEGIN SOLUTION\n{code}\n### END SOLUTION")
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": grade_id, "locked": False}
    return cell


def check(code: str, grade_id: str):
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1, "locked": True}
    return cell


def test_the_reference_passes_its_checks_and_reads_the_workshop_files(tmp_path, capsys):
    folder = write_workshop(tmp_path / "workshops", "WKSHP-OK")
    (folder / "data.txt").write_text("3\n4\n")
    _lab(folder, [solution("total = sum(int(x) for x in open('data.txt'))", "total-answer"),
                  check('assert total == 7, "add the numbers of data.txt"\n### BEGIN HIDDEN TESTS\n'
                        'assert isinstance(total, int)\n### END HIDDEN TESTS', "total")])
    assert catalog_main(["check", str(tmp_path / "workshops")]) == 0, capsys.readouterr().err
    assert "running workshops/WKSHP-OK/1-Lab.ipynb (1 checks)" in capsys.readouterr().out


def test_a_failing_and_a_never_run_check_are_named(tmp_path, capsys):
    folder = write_workshop(tmp_path / "workshops", "WKSHP-BAD")
    _lab(folder, [solution("answer = 41", "answer-cell"),
                  check('assert answer == 42, "the answer is 42"', "answer"),
                  solution("import time\ntime.sleep(600)", "slow-cell"),
                  check("assert True", "after-the-hang")])
    assert catalog_main(["check", str(tmp_path / "workshops"), "--cell-timeout", "3"]) == 1
    err = capsys.readouterr().err
    assert ("workshops/WKSHP-BAD/1-Lab.ipynb: cells[1]: check 'answer' fails on the reference solution: "
            "AssertionError: the answer is 42") in err
    assert "workshops/WKSHP-BAD/1-Lab.ipynb: kernel: stopped: A cell timed out" in err
    assert "workshops/WKSHP-BAD/1-Lab.ipynb: cells[3]: check 'after-the-hang' never ran" in err
    # the participant's copy runs too: a check that passes with the stubs would count for nothing done
    assert ("workshops/WKSHP-BAD/1-Lab.ipynb: cells[3]: check 'after-the-hang' passes on the participant's copy, "
            "before any exercise is done") in err
    assert "cells[1]: check 'answer' passes on the participant's copy" not in err
    assert "nothing was synced" in err


def test_the_kernel_sees_none_of_the_machines_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("WOD_ADMIN_TOKEN", "do-not-leak")
    folder = write_workshop(tmp_path / "workshops", "WKSHP-ENV")
    _lab(folder, [solution("import os\nleaked = [k for k, v in os.environ.items() if v == 'do-not-leak']",
                           "env-answer"),
                  check('assert leaked == [], f"the kernel sees {leaked}"\nassert "env-answer" not in dir()', "env")])
    assert catalog_main(["check", str(tmp_path / "workshops")]) == 0, capsys.readouterr().err
