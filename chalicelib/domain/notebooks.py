"""Per-student notebooks: every cell is a Jinja2 template, the result must be valid nbformat."""
from __future__ import annotations

import json
from typing import Any, Mapping


def render_notebook(source: bytes | str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Render each cell's source with ``variables``; return the notebook as a JSON dict."""
    import jinja2
    import nbformat

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    nb = nbformat.reads(source if isinstance(source, str) else source.decode("utf-8"), as_version=4)
    for cell in nb.cells:
        cell.source = env.from_string(cell.source).render(**variables)
    nbformat.validate(nb)
    return json.loads(nbformat.writes(nb))


def completion(notebooks: list[Mapping[str, Any]]) -> float:
    """Executed code cells over code cells, across the workshop's notebooks (0-100)."""
    code = [c for nb in notebooks for c in nb.get("cells", []) if c.get("cell_type") == "code" and c.get("source")]
    if not code:
        return 0.0
    done = sum(1 for c in code if c.get("execution_count"))
    return round(100.0 * done / len(code), 1)
