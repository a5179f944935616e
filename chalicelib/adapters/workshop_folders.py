"""Read and validate workshop folders; every problem names its file and field."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from chalicelib.adapters.render import RefusedTemplate, content_environment, render_content
from chalicelib.domain.checks import InvalidCheck, checks
from chalicelib.domain.workshop_spec import WorkshopSpec

NOTEBOOK_VARIABLES = frozenset({"student_id", "password", "hub_url", "workshop_id", "workshop_title"})
APPLIANCE_VARIABLES = frozenset({"appliance_url", "appliance_token"})
# What each variable holds when `catalog check` renders a cell (in the sandbox, as Deploy will).
SAMPLES = {"student_id": "student1", "password": "Sample-Passw0rd", "hub_url": "https://hub.example.com",
           "workshop_id": "WKSHP-SAMPLE", "workshop_title": "Sample workshop",
           "appliance_url": "http://127.0.0.1:9000", "appliance_token": "sample-appliance-token"}
README = "0-ReadMeFirst.ipynb"
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}
Problem = tuple[str, str, str]


@dataclass
class Workshop:
    folder: Path
    spec: WorkshopSpec
    notebooks: list[str] = field(default_factory=list)  # every notebook a participant gets, by relative path
    content_version: str = ""
    checks: int = 0  # exercise checks across its notebooks


def content_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part in SKIPPED or part.startswith(".") for part in p.relative_to(folder).parts)
    )


def content_version(folder: Path) -> str:
    """Hash of every file's path and bytes: changes whenever the content does."""
    digest = hashlib.sha256()
    for path in content_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.parent).as_posix()
    except ValueError:
        return path.as_posix()


def _load_spec(folder: Path, root: Path, problems: list[Problem]) -> WorkshopSpec | None:
    import yaml
    from pydantic import ValidationError

    path = folder / "workshop.yaml"
    name = rel(path, root)
    if not path.is_file():
        problems.append((name, "-", "missing: every workshop folder needs a workshop.yaml"))
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problems.append((name, where, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    if not isinstance(data, dict):
        problems.append((name, "-", "must be a mapping of fields"))
        return None
    try:
        spec = WorkshopSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "-"
            problems.append((name, loc, err["msg"]))
        return None
    if spec.id != folder.name:
        problems.append((name, "id", f"is {spec.id!r} but the folder is named {folder.name!r}"))
    if spec.badge and "://" not in spec.badge:
        badge = (folder / spec.badge).resolve()
        if folder.resolve() not in badge.parents or not badge.is_file():
            problems.append((name, "badge", f"file {spec.badge!r} not found in the workshop folder"))
        elif badge.suffix.lower() not in (".svg", ".png"):
            problems.append((name, "badge", "must be an .svg or .png file"))
    return spec


def check_notebook(path: Path, allowed: frozenset[str], root: Path) -> tuple[list[Problem], int]:
    """nbformat validity, Jinja2 syntax and known variables in every cell, exercise checks marked
    as nbgrader marks them (``domain/checks.py``): the problems, and how many checks it has."""
    import jinja2
    import jinja2.meta
    import nbformat

    name = rel(path, root)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several unrelated types for bad files
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [(name, "notebook", f"not a valid notebook: {first_line}")], 0
    env = content_environment()
    problems: list[Problem] = []
    for index, cell in enumerate(nb.cells):
        try:
            parsed = env.parse(cell.source)
        except jinja2.TemplateSyntaxError as exc:
            problems.append((name, f"cells[{index}]", f"template error on line {exc.lineno}: {exc.message}"))
            continue
        unknown = jinja2.meta.find_undeclared_variables(parsed) - allowed
        if unknown:
            problems.append((name, f"cells[{index}]", f"unknown template variable(s): {', '.join(sorted(unknown))}"
                             f" (allowed: {', '.join(sorted(allowed))})"))
            continue
        try:
            render_content(cell.source, {variable: SAMPLES.get(variable, variable) for variable in allowed})
        except RefusedTemplate as exc:
            problems.append((name, f"cells[{index}]", str(exc)))
        except Exception as exc:  # whatever else Deploy's render would raise, the author sees here
            problems.append((name, f"cells[{index}]", f"does not render: {type(exc).__name__}: {exc}"))
    try:
        return problems, len(checks(nb, name))
    except InvalidCheck as exc:
        return [*problems, (name, exc.place, exc.reason)], 0


def load_workshop(folder: Path, root: Path, problems: list[Problem]) -> Workshop | None:
    spec = _load_spec(folder, root, problems)
    if spec is None:
        return None
    allowed = NOTEBOOK_VARIABLES | (APPLIANCE_VARIABLES if spec.appliance else frozenset())
    notebooks = sorted(p.relative_to(folder).as_posix() for p in content_files(folder) if p.suffix == ".ipynb")
    if README not in notebooks:
        problems.append((rel(folder, root) + "/", README, "missing: participants start from this notebook"))
    if not any("conclusion" in n.lower() for n in notebooks if "/" not in n):
        problems.append((rel(folder, root) + "/", "*Conclusion*.ipynb", "missing: a conclusion notebook"))
    total = 0
    for notebook in notebooks:
        found, count = check_notebook(folder / notebook, allowed, root)
        problems.extend(found)
        total += count
    return Workshop(folder=folder, spec=spec, notebooks=notebooks, content_version=content_version(folder),
                    checks=total)


def _cross_checks(workshops: Iterable[Workshop], root: Path, known_locations: Iterable[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    ports: dict[int, str] = {}
    for w in workshops:
        yaml_name = rel(w.folder / "workshop.yaml", root)
        clashes = sorted({owners[s] for s in w.spec.student_range.ids() if s in owners})
        for other in clashes:
            problems.append((yaml_name, "students", f"student range overlaps the range of {other}"))
        for student in w.spec.student_range.ids():
            owners.setdefault(student, w.spec.id)
        if w.spec.location is None:
            problems.append((yaml_name, "location", "missing, and the platform knows "
                             + (f"several locations ({', '.join(sorted(known_locations))}): name one"
                                if known_locations else "no location to run it in (WOD_LOCATIONS)")))
        elif known_locations is not None and w.spec.location not in known_locations:
            problems.append((yaml_name, "location", f"unknown location {w.spec.location!r} (known: "
                             f"{', '.join(sorted(known_locations)) or 'none'})"))
        if w.spec.appliance:
            size = len(w.spec.student_range.ids())
            span = range(w.spec.appliance.port_base, w.spec.appliance.port_base + size)
            taken = sorted({ports[p] for p in span if p in ports})
            for other in taken:
                problems.append((yaml_name, "appliance.port_base", f"appliance ports overlap those of {other}"))
            for port in span:
                ports.setdefault(port, w.spec.id)
    return problems


def load_catalog(root: Path, known_locations: Iterable[str] | None = None) -> tuple[list[Workshop], list[Problem]]:
    """Every workshop under ``root`` and every problem found; nothing is partial."""
    problems: list[Problem] = []
    if not root.is_dir():
        return [], [(root.as_posix(), "-", "not a directory")]
    known = sorted(known_locations) if known_locations is not None else None
    workshops = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        workshop = load_workshop(folder, root, problems)
        if workshop:
            if workshop.spec.location is None and known is not None and len(known) == 1:  # the default location
                workshop = replace(workshop, spec=workshop.spec.model_copy(update={"location": known[0]}))
            workshops.append(workshop)
    problems.extend(_cross_checks(workshops, root, known))
    return workshops, problems
