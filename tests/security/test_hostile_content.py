"""Workshop content is not trusted code: a notebook cell that reaches into Python through its
template is refused by `catalog check` (file and cell named) and by the Deploy task's render,
and nothing it asked for runs."""
from __future__ import annotations

import pytest

from chalicelib.adapters.render import RefusedTemplate, render_notebook
from chalicelib.adapters.workshop_folders import load_catalog
from tests.factory import write_workshop

HOSTILE = [
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('MARKER', 'w') }}",
]
VARIABLES = {"student_id": "student1", "password": "pw", "hub_url": "https://hub", "workshop_id": "W",
             "workshop_title": "T"}


def notebook(source: str) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Hello {{ student_id }}"), nbformat.v4.new_code_cell(source)]
    return nbformat.writes(nb)


@pytest.mark.parametrize("cell", HOSTILE)
def test_the_deploy_render_refuses_a_hostile_cell_and_runs_nothing(cell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RefusedTemplate, match=r"cells\[1\]: the template sandbox refused it"):
        render_notebook(notebook(cell), VARIABLES)
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("cell", HOSTILE)
def test_catalog_check_names_the_file_and_cell(cell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_workshop(tmp_path / "workshops", "WKSHP-EVIL", notebooks={
        "0-ReadMeFirst.ipynb": ["Welcome {{ student_id }}", cell], "9-Conclusion.ipynb": ["Bye"]})
    workshops, problems = load_catalog(tmp_path / "workshops", ["local"])
    refused = [p for p in problems if p[1] == "cells[1]"]
    assert refused and refused[0][0].endswith("WKSHP-EVIL/0-ReadMeFirst.ipynb"), problems
    assert "sandbox refused" in refused[0][2]
    assert not (tmp_path / "MARKER").exists()


def test_ordinary_templates_still_render():
    rendered = render_notebook(notebook("print('{{ student_id }}', {{ [1, 2] | length }}, '{{ hub_url | upper }}')"),
                               VARIABLES)
    assert "".join(rendered["cells"][1]["source"]) == "print('student1', 2, 'HTTPS://HUB')"


def test_a_cell_that_cannot_render_is_reported(tmp_path):
    write_workshop(tmp_path / "workshops", "WKSHP-DIV", notebooks={
        "0-ReadMeFirst.ipynb": ["{{ 1 // 0 }}"], "9-Conclusion.ipynb": ["Bye"]})
    _, problems = load_catalog(tmp_path / "workshops", ["local"])
    assert any(p[1] == "cells[0]" and "does not render: ZeroDivisionError" in p[2] for p in problems), problems
