"""A transaction's energy and power over time, as inline SVG (no script, no library).

Energy is the delivered energy (the import register minus ``meterStart``, in kWh), with
the start and stop readings as its first and last points; power is ``Power.Active.Import``
in kW. Only whole-charger values (no phase) are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
