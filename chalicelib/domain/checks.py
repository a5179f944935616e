"""Exercise checks in workshop notebooks, written as nbgrader writes them.

An author marks cells with nbgrader's metadata, so existing nbgrader material works as it is:

* a **solution** cell (``nbgrader: {solution: true}``): the code between ``### BEGIN SOLUTION``
  and ``### END SOLUTION`` (the whole cell when it has no such lines) is the reference answer; a
  participant gets ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` in its place
  (``YOUR ANSWER HERE`` in a markdown cell);
* a **check** cell (``nbgrader: {grade: true, solution: false, grade_id: ..., points: ...}``):
  tests that raise (``assert ..., "hint"``) unless the exercise is right. What lies between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` is left out of a participant's copy.

A participant runs a check as often as they like and reads its result right under the cell (the
assertion's message is the hint). A check **passed** when, in the participant's notebook, the
cell with its ``grade_id`` still holds the participant's copy of the check, ran, and raised
nothing. Completion is then the share of the workshop's checks passed; a workshop without checks
falls back to executed code cells (:func:`completion` says which).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# as nbgrader finds them: a line that contains the words (``### BEGIN SOLUTION``, ``# BEGIN SOLUTION``)
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ANSWER_STUB = "YOUR ANSWER HERE"  # a markdown solution cell
GRADE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # a check's name, as notebooks and the live room give it
TEMPLATE = re.compile(r"{{|{%|{#")
Cell = Mapping[str, Any]


class InvalidCheck(ValueError):
    """A notebook's checks are not as nbgrader writes them: ``place`` (``cells[3]``) and ``reason``."""

    def __init__(self, place: str, reason: str, notebook: str = "notebook"):
        super().__init__(f"{notebook}: {place}: {reason}")
        self.notebook, self.place, self.reason = notebook, place, reason


@dataclass(frozen=True)
class Check:
    grade_id: str
    points: float
    source: str  # what the participant's copy of the cell holds


@dataclass(frozen=True)
class Completion:
    percent: float
    basis: str  # "checks" or "cells"
    passed: int = 0
    total: int = 0


def _source(cell: Cell) -> str:
    source = cell.get("source", "")
    text = "".join(str(part) for part in source) if isinstance(source, list) else str(source)
    return text.replace("\r\n", "\n")  # as the notebook reaches the participant (rendered)


def _marks(cell: Any) -> Mapping[str, Any]:
    metadata = cell.get("metadata") if isinstance(cell, Mapping) else None
    marks = metadata.get("nbgrader") if isinstance(metadata, Mapping) else None
    return marks if isinstance(marks, Mapping) else {}


def is_check(cell: Cell) -> bool:
    marks = _marks(cell)
    return cell.get("cell_type") == "code" and marks.get("grade") is True and not marks.get("solution")


def is_solution(cell: Cell) -> bool:
    return cell.get("cell_type") in ("code", "markdown") and _marks(cell).get("solution") is True


def _cut(text: str, begin: str, end: str, replacement: str | None, where: str) -> str:
    """``text`` with each ``begin``...``end`` block (marker lines included) replaced."""
    out: list[str] = []
    inside, indent = False, ""
    for line in text.split("\n"):
        if begin in line:
            if inside:
                raise InvalidCheck(where, f"{begin} twice without {end}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            if replacement is not None:
                out.extend(indent + part for part in replacement.split("\n"))
        elif end in line:
            if not inside:
                raise InvalidCheck(where, f"{end} without {begin}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise InvalidCheck(where, f"{begin} is never closed by {end}")
    return "\n".join(out)


def participant_source(cell: Cell, where: str = "cell") -> str:
    """What a participant's copy of ``cell`` holds: solutions stubbed, hidden tests left out."""
    source = _source(cell)
    if is_solution(cell):
        stub = STUB if cell.get("cell_type") == "code" else ANSWER_STUB
        if BEGIN_SOLUTION not in source and END_SOLUTION not in source:
            return stub  # no region marked: the whole cell is the solution
        return _cut(source, BEGIN_SOLUTION, END_SOLUTION, stub, where)
    if is_check(cell):
        return _cut(source, BEGIN_HIDDEN, END_HIDDEN, None, where)
    return source


def checks(notebook: Mapping[str, Any], name: str = "notebook") -> list[Check]:
    """The checks of a workshop (reference) notebook, in order. :class:`InvalidCheck` when two share
    a ``grade_id``, one has none, its points are not a number >= 0, it is a template, or a
    solution or hidden-tests block is not closed."""
    found: list[Check] = []
    seen: set[str] = set()
    for index, cell in enumerate(notebook.get("cells") or []):
        where = f"cells[{index}]"
        try:
            if is_solution(cell):
                participant_source(cell, where)
            if not is_check(cell):
                continue
            marks = _marks(cell)
            grade_id = marks.get("grade_id")
            if not isinstance(grade_id, str) or not grade_id.strip():
                raise InvalidCheck(where, "a check needs nbgrader.grade_id (a name)")
            if not GRADE_ID.fullmatch(grade_id):
                raise InvalidCheck(where, f"the grade_id {grade_id!r} is not 1 to 64 letters, digits, _ . : or - "
                                          "(the name the live room is told)")
            if grade_id in seen:
                raise InvalidCheck(where, f"the grade_id {grade_id!r} is used by another check")
            points = marks.get("points", 1)
            if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 <= points < math.inf:
                raise InvalidCheck(where, f"nbgrader.points must be a number >= 0, not {points!r}")
            if TEMPLATE.search(_source(cell)):
                raise InvalidCheck(where, "a check cannot be a template ({{ }}, {% %}): its text is compared "
                                          "with the participant's")
            seen.add(grade_id)
            found.append(Check(grade_id, float(points), participant_source(cell, where)))
        except InvalidCheck as exc:
            raise InvalidCheck(exc.place, exc.reason, name) from None
    return found


def release(notebook: dict[str, Any]) -> dict[str, Any]:
    """The participant's copy of a notebook (JSON dict), in place: solutions stubbed, hidden tests
    left out, outputs of checks and solutions cleared."""
    for cell in notebook.get("cells") or []:
        if is_solution(cell) or is_check(cell):
            cell["source"] = participant_source(cell)
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
    return notebook


def _ran_clean(cell: Cell) -> bool:
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):
        outputs = []
    return bool(cell.get("execution_count")) and not any(
        not isinstance(o, Mapping) or o.get("output_type") == "error" for o in outputs)


def passed(notebook: Mapping[str, Any], workshop_checks: Sequence[Check]) -> set[str]:
    """The ``grade_id`` of each check the participant's ``notebook`` shows passed."""
    wanted = {check.grade_id: check for check in workshop_checks}
    done: set[str] = set()
    cells = notebook.get("cells") if isinstance(notebook, Mapping) else None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, Mapping):
            continue
        grade_id = _marks(cell).get("grade_id")
        check = wanted.get(grade_id) if isinstance(grade_id, str) else None
        if check is not None and _source(cell).strip() == check.source.strip() and _ran_clean(cell):
            done.add(check.grade_id)
    return done


def executed_cells(notebooks: Sequence[Mapping[str, Any]]) -> float:
    """Executed code cells over code cells, across notebooks (0-100)."""
    code = [c for nb in notebooks if isinstance(nb, Mapping) and isinstance(nb.get("cells"), list)
            for c in nb["cells"] if isinstance(c, Mapping) and c.get("cell_type") == "code" and c.get("source")]
    if not code:
        return 0.0
    return round(100.0 * sum(1 for c in code if c.get("execution_count")) / len(code), 1)


def earns_badge(workshop_checks: int, completion: float | None, checks_passed: int | None = None) -> bool:
    """The workshop's badge: every check passed (counted, when the count is known); in a workshop
    without checks, taking part: at least one of its cells run (the thank-you says so)."""
    if workshop_checks == 0:
        return completion is not None and completion > 0
    if checks_passed is not None:
        return checks_passed >= workshop_checks
    return completion is not None and completion >= 100.0


def completion(participant: Sequence[Mapping[str, Any]], originals: Sequence[Mapping[str, Any]]) -> Completion:
    """How much of the workshop a participant did: checks passed over the workshop's checks (the
    ``originals``' ``i``-th notebook against the participant's ``i``-th), or, for a workshop
    without checks, executed code cells."""
    total = passed_count = 0
    for mine, original in zip(participant, originals, strict=True):
        workshop_checks = checks(original)
        total += len(workshop_checks)
        passed_count += len(passed(mine, workshop_checks))
    if not total:
        return Completion(executed_cells(participant), "cells")
    return Completion(round(100.0 * passed_count / total, 1), "checks", passed_count, total)


def earned(badge_earned: bool | None, workshop_checks: int, completion: float | None,
           checks_passed: int | None) -> bool:
    """Whether a finished registration earned its workshop's badge: as decided when it finished
    (the workshop's checks then), or, for a registration that finished before that was kept, by
    :func:`earns_badge` with the workshop's checks now."""
    return badge_earned if badge_earned is not None else earns_badge(workshop_checks, completion, checks_passed)
