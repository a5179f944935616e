"""How much of a workshop a participant did, read from their notebooks."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def completion(notebooks: list[Mapping[str, Any]]) -> float:
    """Executed code cells over code cells, across the workshop's notebooks (0-100)."""
    code = [c for nb in notebooks for c in nb.get("cells", []) if c.get("cell_type") == "code" and c.get("source")]
    if not code:
        return 0.0
    done = sum(1 for c in code if c.get("execution_count"))
    return round(100.0 * done / len(code), 1)
