"""Moving through a page with the keyboard alone (Tab, Shift+Tab), checking at each stop that the
focused control can be seen: it matches ``:focus-visible``, draws an outline or a ring, and is on
screen. Not a test module."""
from __future__ import annotations

from playwright.sync_api import expect

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  const style = getComputedStyle(e), box = e.getBoundingClientRect();
  const name = (e.getAttribute("aria-label") || e.innerText || e.value || "").trim().replace(/\\s+/g, " ");
  return {
    what: `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} "${name.slice(0, 60)}"`,
    focusVisible: e.matches(":focus-visible"),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    ring: style.boxShadow !== "none",
    onScreen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
      && box.left < window.innerWidth && box.top < window.innerHeight,
  };
}"""
FOCUSABLE = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
  .filter(e => !e.disabled && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden").length"""


def assert_focus_visible(page) -> str:
    """The focused control of ``page`` shows its focus; returns a short description of it."""
    focused = page.evaluate(FOCUSED)
    assert focused, "nothing has the focus"
    assert focused["focusVisible"] and (focused["outline"] or focused["ring"]) and focused["onScreen"], \
        f"focus cannot be seen on {focused['what']}: {focused}"
    return focused["what"]


def has_focus(target) -> bool:
    """Whether ``target`` has the focus; asked from Playwright's own script world, which a sandboxed
    frame (an email in the inbox) lets run where the page's may not."""
    try:
        expect(target).to_be_focused(timeout=100)
    except AssertionError:
        return False
    return True


def tab_to(page, target, *, back: bool = False, limit: int = 40, visible: bool = True) -> list[str]:
    """Press Tab (Shift+Tab with ``back``) until ``target`` (a locator, in a frame or not) has the
    focus; with ``visible``, assert at each stop that the focus can be seen. Returns the stops."""
    stops: list[str] = []
    for _ in range(limit):
        if has_focus(target):
            return stops
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if visible:
            stops.append(assert_focus_visible(page))
    raise AssertionError(f"{target} never had the focus after {limit} presses; the focus went: {stops}")


def tab_through(page) -> list[str]:
    """From the top of a page just loaded, Tab once per focusable control, asserting each time that
    the focus can be seen. Returns the stops."""
    stops = []
    for _ in range(page.evaluate(FOCUSABLE)):
        page.keyboard.press("Tab")
        stops.append(assert_focus_visible(page))
    return stops
