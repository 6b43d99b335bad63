"""Charts as inline SVG (no script, no library): a transaction's energy and power over
time, and the bars and lines of the overview and the charge point page.

A transaction's energy is the delivered energy (the import register minus ``meterStart``, in
kWh), with the start and stop readings as its first and last points; power is
``Power.Active.Import`` in kW. Only whole-charger values (no phase) are drawn.

Every chart carries its meaning as text (``aria-label`` and ``<title>``, each bar its own
``<title>``), and the pages give the numbers as a table too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

from markupsafe import Markup

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28  # margins for the axis labels


@dataclass(frozen=True)
class Series:
    name: str
    unit: str
    points: list[tuple[datetime, float]]
    css: str


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _scaled(value: str, unit: str | None, kilo: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if unit == kilo else number / 1000


def series(transaction: dict[str, Any]) -> tuple[Series, Series]:
    start = float(transaction["meterStart"])
    energy: list[tuple[datetime, float]] = [(_time(transaction["startTimestamp"]), 0.0)]
    power: list[tuple[datetime, float]] = []
    for value in transaction.get("meterValues", []):
        if value.get("phase"):
            continue
        measurand = value.get("measurand") or ENERGY
        at = _time(value["timestamp"])
        if measurand == ENERGY:
            kwh = _scaled(value["value"], value.get("unit"), "kWh")
            if kwh is not None:
                energy.append((at, max(0.0, kwh - start / 1000)))
        elif measurand == POWER:
            kw = _scaled(value["value"], value.get("unit"), "kW")
            if kw is not None:
                power.append((at, kw))
    if transaction.get("stopTimestamp") and transaction.get("meterStop") is not None:
        stop = (float(transaction["meterStop"]) - start) / 1000
        energy.append((_time(transaction["stopTimestamp"]), max(0.0, stop)))
    energy.sort(key=lambda point: point[0])
    power.sort(key=lambda point: point[0])
    return (
        Series("Energy delivered", "kWh", energy, "energy"),
        Series("Power", "kW", power, "power"),
    )


def _svg(line: Series, t0: datetime, t1: datetime) -> str:
    span = max((t1 - t0).total_seconds(), 1.0)
    top = max((v for _, v in line.points), default=0.0)
    top = top * 1.1 if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(at: datetime, value: float) -> str:
        x = LEFT + (at - t0).total_seconds() / span * plot_w
        y = TOP + plot_h - value / top * plot_h
        return f"{x:.1f},{y:.1f}"

    last = line.points[-1][1] if line.points else 0.0
    label = f"{line.name} over time, {len(line.points)} readings, last {last:.2f} {line.unit}"
    parts = [
        f'<svg class="chart {line.css}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f"<title>{escape(label)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{top:.2f}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h / 2 + 4:.0f}" '
        f'text-anchor="end">{line.unit}</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{t0:%H:%M:%S}</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{t1:%H:%M:%S} UTC</text>",
    ]
    if len(line.points) >= 2:
        points = " ".join(xy(at, value) for at, value in line.points)
        parts.append(f'<polyline class="line" points="{points}"/>')
    for at, value in line.points:
        x, y = xy(at, value).split(",")
        parts.append(f'<circle class="dot" cx="{x}" cy="{y}" r="3"/>')
    parts.append("</svg>")
    return "".join(parts)


def transaction_chart(transaction: dict[str, Any]) -> dict[str, Any]:
    """``{"energy": svg, "power": svg or None, "rows": [...]}`` for the template."""
    energy, power = series(transaction)
    times = [at for at, _ in energy.points + power.points]
    t0, t1 = min(times), max(times)
    rows = sorted(
        [(at, f"{v:.3f} kWh", "energy") for at, v in energy.points]
        + [(at, f"{v:.2f} kW", "power") for at, v in power.points],
        key=lambda row: row[0],
    )
    return {
        "energy": Markup(_svg(energy, t0, t1)),
        "power": Markup(_svg(power, t0, t1)) if power.points else None,
        "rows": [(f"{at:%Y-%m-%d %H:%M:%S}", text, kind) for at, text, kind in rows],
    }


# ---- the fleet's and a charge point's charts (bars per day or hour, counts over time) ----


@dataclass(frozen=True)
class Bar:
    label: str  # in its tooltip
    value: float
    tick: str = ""  # under the bar


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def _frame(css: str, label: str, top: float, unit: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    return [
        f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f"<title>{escape(label)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_number(top)}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h / 2 + 4:.0f}" '
        f'text-anchor="end">{escape(unit)}</text>',
    ]


def bar_chart(bars: Sequence[Bar], *, unit: str, label: str, css: str) -> Markup:
    """One bar per day or hour; ``label`` says what the chart shows (its accessible name,
    with the total added)."""
    top = nice_top(max((bar.value for bar in bars), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    total = sum(bar.value for bar in bars)
    parts = _frame(f"bars {css}", f"{label}; total {_number(total)} {unit}", top, unit)
    slot = plot_w / max(len(bars), 1)
    for n, bar in enumerate(bars):
        x = LEFT + n * slot
        h = max(0.0, bar.value) / top * plot_h
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.12:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{slot * 0.76:.1f}" height="{h:.1f}">'
            f"<title>{escape(bar.label)}: {_number(bar.value)} {escape(unit)}</title></rect>"
        )
        if bar.tick:
            parts.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{escape(bar.tick)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    points: Sequence[tuple[datetime, float]]


def lines_chart(
    lines: Sequence[Line], t0: datetime, t1: datetime, *, unit: str, label: str, gap: float
) -> Markup:
    """Counts over time from ``t0`` to ``t1``; two points further apart than ``gap``
    seconds are not joined (no instance ran in between, so nothing is known)."""
    top = nice_top(max((v for line in lines for _, v in line.points), default=0.0))
    span = max((t1 - t0).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(at: datetime, value: float) -> str:
        x = LEFT + (at - t0).total_seconds() / span * plot_w
        return f"{x:.1f},{TOP + plot_h - value / top * plot_h:.1f}"

    latest = ", ".join(
        f"{line.name} now {_number(line.points[-1][1])}" for line in lines if line.points
    )
    parts = _frame("lines", f"{label}; {latest or 'no samples yet'}", top, unit)
    for line in lines:
        runs: list[list[tuple[datetime, float]]] = []
        for point in line.points:
            if runs and (point[0] - runs[-1][-1][0]).total_seconds() <= gap:
                runs[-1].append(point)
            else:
                runs.append([point])
        for run in runs:
            if len(run) == 1:
                x, y = xy(*run[0]).split(",")
                parts.append(f'<circle class="dot {line.css}" cx="{x}" cy="{y}" r="2"/>')
            else:
                points = " ".join(xy(at, value) for at, value in run)
                parts.append(f'<polyline class="line {line.css}" points="{points}"/>')
    parts.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{t0:%m-%d %H:%M}</text>')
    parts.append(
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{t1:%m-%d %H:%M} UTC</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


# ---- from the stats API's answers (voltaro.admin.stats) to charts ------------------------


def energy_per_day_chart(days: Sequence[dict[str, Any]], label: str) -> Markup:
    """Bars of kWh per day, a tick under the first of each week counted from the last."""
    last = len(days) - 1
    bars = [
        Bar(day["day"], day["energyWh"] / 1000, day["day"][5:] if (last - n) % 7 == 0 else "")
        for n, day in enumerate(days)
    ]
    return bar_chart(bars, unit="kWh", label=label, css="energy")


def sessions_per_hour_chart(hours: Sequence[dict[str, Any]]) -> Markup:
    """Bars of sessions started per hour; ticks every 6 hours (a day) or every day (longer)."""
    daily = len(hours) > 48
    bars = []
    for hour in hours:
        at = _time(hour["hour"])
        if daily:
            tick = f"{at:%m-%d}" if at.hour == 0 else ""
        else:
            tick = f"{at:%H}:00" if at.hour % 6 == 0 else ""
        bars.append(Bar(f"{at:%Y-%m-%d %H}:00 UTC", hour["sessions"], tick))
    span = f"{len(hours) // 24} days" if daily else f"{len(hours)} hours"
    label = f"Sessions started per hour, last {span}"
    return bar_chart(bars, unit="sessions", label=label, css="sessions")


def online_chart(samples: dict[str, Any], now: datetime) -> Markup:
    """Chargers online and connectors charging, sample by sample, over the period asked."""
    items = samples["items"]
    t0 = now - timedelta(hours=samples["hours"])
    online = [(_time(s["at"]), float(s["online"])) for s in items]
    charging = [(_time(s["at"]), float(s["charging"])) for s in items]
    return lines_chart(
        [Line("online", "online", online), Line("charging", "charging", charging)],
        t0,
        now,
        unit="count",
        label=f"Chargers online and connectors charging, last {samples['hours']} hours",
        gap=2.5 * samples["intervalSeconds"],
    )
