"""The reference run of ``catalog check``: each notebook that has checks runs, solutions in place,
in a real Jupyter kernel (the Python the participants' servers use), from a copy of its workshop
folder; a check that raises, or that never runs (an earlier cell hung, the kernel died), is a
problem named like any other (file, ``cells[i]``, why). Then the participant's copy runs the same
way, and a check that passes on it is a problem too. The author's code runs as whoever runs the
check (authors are trusted as the appliances they write are), in a temporary folder with a plain
environment: no keys or settings of the machine."""
from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib.adapters.render import render_content
from chalicelib.adapters.workshop_folders import SAMPLES, Problem, Workshop, rel
from chalicelib.domain.checks import checks, is_check, release

KERNEL = "wod-reference"
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")  # what the kernel inherits, nothing else
# the participants' servers' Python (make installs it); a venv's python is a symlink: not resolved
HUB_PYTHON = Path(__file__).resolve().parents[2] / ".venv-hub" / "bin" / "python"


def kernel_python() -> str:
    """The participants' Python when it is installed here, else this one."""
    return str(HUB_PYTHON) if HUB_PYTHON.is_file() else sys.executable


@contextmanager
def _kernelspec(python: str) -> Iterator[None]:
    """A kernel named :data:`KERNEL` that runs ``python``, found through ``JUPYTER_PATH``."""
    with tempfile.TemporaryDirectory(prefix="wod-kernel-") as home:
        spec = Path(home, "kernels", KERNEL)
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Workshop reference", "language": "python"}))
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = home + (os.pathsep + before if before else "")
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = before


def _error(cell: dict) -> str | None:
    for output in cell.get("outputs") or []:
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return None


class KernelUnavailable(Exception):
    """No kernel could be started: nothing ran."""


def _run(nb: Any, folder: Path, python: str, cell_timeout: int) -> str | None:
    """Execute ``nb`` in place, in a kernel of ``python`` working in a copy of ``folder``, with
    no environment but a plain one (no keys or settings of whoever runs the check). Returns why
    the run stopped early, if it did; :class:`KernelUnavailable` when it never started."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    with tempfile.TemporaryDirectory(prefix="wod-reference-") as work:
        shutil.copytree(folder, work, dirs_exist_ok=True)
        client = NotebookClient(nb, kernel_name=KERNEL, timeout=cell_timeout, allow_errors=True,
                                resources={"metadata": {"path": work}})
        km = client.km = client.create_kernel_manager()  # the client still shuts it down
        km.transport, km.ip = "ipc", str(Path(work, "kernel"))  # a Unix socket: nothing on TCP
        env = {key: os.environ[key] for key in KERNEL_ENVIRONMENT if key in os.environ} | {"HOME": work}
        try:
            client.execute(env=env)
        except (CellTimeoutError, DeadKernelError, CellExecutionError) as exc:
            return f"stopped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        except Exception as exc:  # no kernel at all
            atexit.unregister(client._cleanup_kernel)  # left registered by nbclient when the start fails
            raise KernelUnavailable(f"could not start {python} as a Jupyter kernel (ipykernel installed?): "
                                    f"{type(exc).__name__}: {exc}") from exc
    return None


def _judge(nb: Any, name: str, participant: bool) -> list[Problem]:
    """What the run of one copy says about its checks: on the reference, each must have run and
    passed; on the participant's copy, none may pass."""
    problems: list[Problem] = []
    for index, cell in enumerate(nb.cells):
        if not is_check(cell):
            continue
        grade_id, failure, ran = cell.metadata["nbgrader"]["grade_id"], _error(cell), cell.get("execution_count")
        if participant and ran and not failure:
            problems.append((name, f"cells[{index}]", f"check {grade_id!r} passes on the participant's copy, "
                                                      "before any exercise is done"))
        elif not participant and not ran:
            problems.append((name, f"cells[{index}]", f"check {grade_id!r} never ran"))
        elif not participant and failure:
            problems.append((name, f"cells[{index}]", f"check {grade_id!r} fails on the reference solution: "
                                                      f"{failure}"))
    return problems


def _check_notebook(path: Path, name: str, folder: Path, python: str, cell_timeout: int,
                    progress: bool) -> list[Problem]:
    import nbformat

    reference = nbformat.read(path, as_version=4)
    found = checks(reference, name)
    if not found:
        return []
    if progress:
        print(f"running {name} ({len(found)} checks) ...", flush=True)
    for cell in reference.cells:  # as Deploy renders them, with the sample values
        cell.source = render_content(cell.source, SAMPLES)
    participant = nbformat.from_dict(release(copy.deepcopy(reference)))
    problems: list[Problem] = []
    for nb, which in ((reference, "reference"), (participant, "participant")):
        try:
            stopped = _run(nb, folder, python, cell_timeout)
        except KernelUnavailable as exc:
            return [*problems, (name, "kernel", str(exc))]
        if stopped:
            problems.append((name, "kernel", f"{stopped} (the {which} copy)"))
        problems += _judge(nb, name, participant=which == "participant")
    return problems


def run_checks(workshops: list[Workshop], root: Path, python: str | None = None,
               cell_timeout: int = 60, progress: bool = True) -> list[Problem]:
    """Run every notebook with checks of ``workshops`` twice: solutions in place, where every check
    must pass, then as a participant gets it, where none may (a check that passes on the stubs
    would count for nothing done). The problems found."""
    python = python or kernel_python()
    with _kernelspec(python):
        return [problem for workshop in workshops for notebook in workshop.notebooks
                for problem in _check_notebook(workshop.folder / notebook, rel(workshop.folder / notebook, root),
                                               workshop.folder, python, cell_timeout, progress)]
