"""The digest's chart: spend by model over the last 14 days, as a stacked bar chart PNG.

Drawn with Pillow alone (a few hundred kilobytes installed, against matplotlib's and numpy's
tens of megabytes) because a stacked bar chart is a few rectangles and labels.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 900, 460
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 50, 110
_PALETTE = [
    (26, 115, 232),
    (249, 171, 0),
    (52, 168, 83),
    (217, 48, 37),
    (161, 66, 244),
    (0, 172, 193),
    (255, 112, 67),
    (124, 179, 66),
]
_OTHER = (154, 160, 166)
MAX_SERIES = len(_PALETTE)


def _places(top: Decimal) -> int:
    """Decimals that show each gridline's value as it is: cents for dollars, more below (a
    chat of a few hundred tokens costs hundredths of a cent)."""
    if not top:
        return 2
    exponent = (top / 4).normalize().as_tuple().exponent
    return min(8, max(2, -exponent if isinstance(exponent, int) else 2))


def render_chart(days: list[date], series: dict[str, list[Decimal]], *, title: str) -> bytes:
    """PNG bytes. ``series`` maps a model to its spend per day (same order as ``days``);
    beyond ``MAX_SERIES`` models, the smallest are drawn together as "other"."""
    series = _fold(series)
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    draw.text((_LEFT, 14), title, fill="black", font=font)

    totals = [sum((v[n] for v in series.values()), Decimal(0)) for n in range(len(days))]
    top = _nice(max(totals, default=Decimal(0)))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    base = _TOP + plot_h
    for step in range(5):  # gridlines and y labels
        value = top * step / 4
        y = base - plot_h * step / 4
        draw.line((_LEFT, y, WIDTH - _RIGHT, y), fill=(230, 230, 230))
        label = f"${value:,.{_places(top)}f}"
        draw.text((_LEFT - 8, y), label, fill="black", font=small, anchor="rm")

    slot = plot_w / max(1, len(days))
    bar = slot * 0.7
    for n, day in enumerate(days):
        x0 = _LEFT + n * slot + (slot - bar) / 2
        y = float(base)
        for colour, values in zip(_colours(series), series.values(), strict=True):
            h = float(values[n] / top) * plot_h if top else 0.0
            if h > 0:
                draw.rectangle((x0, y - h, x0 + bar, y), fill=colour)
                y -= h
        draw.text((x0 + bar / 2, base + 6), f"{day:%d %b}", fill="black", font=small, anchor="mt")

    x, y = float(_LEFT), float(HEIGHT - _BOTTOM + 40)
    for colour, model in zip(_colours(series), series, strict=True):
        label = model if len(model) <= 28 else model[:27] + "…"
        width = draw.textlength(label, font=small) + 36
        if x + width > WIDTH - _RIGHT:
            x, y = float(_LEFT), y + 20
        draw.rectangle((x, y, x + 12, y + 12), fill=colour)
        draw.text((x + 18, y + 6), label, fill="black", font=small, anchor="lm")
        x += width
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _fold(series: dict[str, list[Decimal]]) -> dict[str, list[Decimal]]:
    ranked = sorted(series.items(), key=lambda kv: -sum(kv[1], Decimal(0)))
    if len(ranked) <= MAX_SERIES:
        return dict(ranked)
    kept, rest = ranked[: MAX_SERIES - 1], ranked[MAX_SERIES - 1 :]
    other = [sum(col, Decimal(0)) for col in zip(*(v for _, v in rest), strict=True)]
    return {**dict(kept), "other": other}


def _colours(series: dict[str, list[Decimal]]) -> list[tuple[int, int, int]]:
    return [_OTHER if m == "other" else _PALETTE[i] for i, m in enumerate(series)]


def _nice(value: Decimal) -> Decimal:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return Decimal(1)
    exp = value.adjusted()
    for mult in (1, 2, 5, 10):
        candidate = Decimal(mult).scaleb(exp)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exp)
