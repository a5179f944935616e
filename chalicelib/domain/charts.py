"""Geometry of the dashboard's pictures, drawn as inline SVG by the templates (no script, no
style attribute: the page's CSP allows neither; colours come from classes in admin.css)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Cell:
    x: int
    y: int
    kind: str  # taken | warm | free | waiting


@dataclass(frozen=True)
class SeatMap:
    cells: list[Cell]
    width: int
    height: int
    more_waiting: int  # people waiting beyond the ones drawn
    size: int  # side of a seat's square


def seat_map(total: int, free: int, warm: int, waiting: int, columns: int = 40, size: int = 13,
             gap: int = 3, waiting_drawn: int = 80) -> SeatMap:
    """One square per seat (taken, then warm, then free), then one dot per waiting person on
    the rows below, so a glance tells how full a workshop is and how long its queue."""
    step = size + gap
    free = max(0, min(free, total))
    warm = max(0, min(warm, free))
    kinds = ["taken"] * (total - free) + ["warm"] * warm + ["free"] * (free - warm)
    cells = [Cell((n % columns) * step, (n // columns) * step, kind) for n, kind in enumerate(kinds)]
    seat_rows = -(-total // columns)
    drawn = min(waiting, waiting_drawn)
    top = seat_rows * step + (step if drawn else 0)
    cells += [Cell((n % columns) * step, top + (n // columns) * step, "waiting") for n in range(drawn)]
    rows_below = -(-drawn // columns)
    height = top + rows_below * step - (gap if cells else 0)
    return SeatMap(cells, columns * step - gap, max(height, size), waiting - drawn, size)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: float
    label: str
    count: int = 0  # how many the value is drawn from (a mean's sample)


@dataclass(frozen=True)
class Histogram:
    bars: list[Bar]
    width: int
    height: int
    peak: int
    ticks: list[tuple[float, str]]  # (x of the label, label)


def hourly_histogram(series: list[tuple[datetime, int]], width: int = 720, height: int = 160,
                     label_every: int = 3) -> Histogram:
    """Vertical bars, one per hour; the tallest fills the height."""
    peak = max([count for _, count in series] + [1])
    slot = width / max(len(series), 1)
    bars, ticks = [], []
    for n, (start, count) in enumerate(series):
        h = height * count / peak
        bars.append(Bar(round(n * slot + 1, 1), round(height - h, 1), round(slot - 2, 1), round(h, 1), count,
                        f"{start:%H}:00"))
        if n % label_every == 0:
            ticks.append((round(n * slot + slot / 2, 1), f"{start:%H}:00"))
    return Histogram(bars, width, height, peak, ticks)


def daily_histogram(series: list[tuple[datetime, int]], width: int = 720, height: int = 120) -> Histogram:
    """Vertical bars, one per day (labelled by date, at most about twelve labels)."""
    peak = max([count for _, count in series] + [1])
    slot = width / max(len(series), 1)
    every = max(1, -(-len(series) // 12))
    bars = [Bar(round(n * slot + 1, 1), round(height - height * count / peak, 1), round(max(slot - 2, 1), 1),
                round(height * count / peak, 1), count, f"{day:%Y-%m-%d}") for n, (day, count) in enumerate(series)]
    ticks = [(round(n * slot + slot / 2, 1), f"{day:%m-%d}") for n, (day, _) in enumerate(series) if n % every == 0]
    return Histogram(bars, width, height, peak, ticks)


def percent_bars(items: list[tuple[str, float, int]], width: int = 480, bar: int = 18,
                 gap: int = 10) -> tuple[list[Bar], int]:
    """Horizontal bars 0-100 %, one per (label, percent, how many) item; returns bars and height."""
    bars = [Bar(0, n * (bar + gap), round(width * max(0.0, min(percent, 100.0)) / 100, 1), bar, percent, label, count)
            for n, (label, percent, count) in enumerate(items)]
    return bars, max(len(items) * (bar + gap) - gap, 0)
