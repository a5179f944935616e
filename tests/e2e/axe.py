"""axe-core (npm, ``node_modules/axe-core``) run inside a page the browser tests reached.

The engine is evaluated in the page through the DevTools protocol, which the page's
Content-Security-Policy (``script-src 'self'``) does not govern, so the page is scanned as
participants get it, its CSP in force. Not a test module.
"""
from __future__ import annotations

from functools import cache

from playwright.sync_api import Error as PlaywrightError

from tests.stack import ROOT

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = ("serious", "critical")

RUN = """tags => axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
  .then(results => results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.map(String).join(" "), summary: n.failureSummary || ""})),
  })))"""


@cache
def _source() -> str:
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: `npm ci` (make install) installs axe-core from package.json")
    return AXE.read_text(encoding="utf-8")


def violations(page) -> list[dict]:
    """Every WCAG 2 A/AA violation axe finds in the page as it is now (any impact). A status page
    that replaces its content while it is scanned is scanned again."""
    try:
        return _run(page)
    except PlaywrightError:
        return _run(page)


def _run(page) -> list[dict]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source())
    return page.evaluate(RUN, TAGS)


def describe(found: list[dict]) -> str:
    lines = []
    for v in found:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            summary = " ".join(node["summary"].split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def assert_accessible(page, what: str = "") -> None:
    """No serious or critical WCAG 2 A/AA violation in ``page``; the message names each rule, its
    impact and help, and the elements that fail it."""
    blocking = [v for v in violations(page) if v["impact"] in BLOCKING]
    assert not blocking, f"axe: {len(blocking)} serious or critical violation(s) on {what or page.url}:\n" \
                         f"{describe(blocking)}"
