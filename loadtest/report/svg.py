"""Tiny inline-SVG charts for the self-contained report: lines/scatter on linear or log axes, bars, stacks.

No JavaScript and no external assets: every chart is a string of SVG embedded in report.html.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

FONT = "font-family='system-ui,Segoe UI,Helvetica,Arial,sans-serif'"


@dataclass
class Mark:
    """One plotted point; invalid marks are drawn as a red cross with their reason as hover text."""

    x: float
    y: float
    valid: bool = True
    title: str = ""


@dataclass
class Series:
    """A named line (or scatter when `line` is False)."""

    name: str
    color: str
    marks: list[Mark] = field(default_factory=list)
    dashed: bool = False
    line: bool = True
    markers: bool = True


@dataclass
class Axis:
    """Maps data values onto pixels, linearly or logarithmically."""

    lo: float
    hi: float
    px0: float
    px1: float
    log: bool = False

    def __call__(self, v: float) -> float:
        f: Callable[[float], float] = math.log10 if self.log else float
        lo, hi = f(self.lo), f(self.hi)
        t = (f(min(max(v, self.lo), self.hi)) - lo) / ((hi - lo) or 1.0)
        return self.px0 + t * (self.px1 - self.px0)

    def ticks(self, n: int = 5) -> list[float]:
        """Round-number ticks: powers of ten (and 2x, 5x when few) on log axes, 1-2-5 steps on linear ones."""
        if self.log:
            decades = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
            mults = (1, 2, 5) if len(decades) <= 3 else (1,)
            return [m * 10.0**d for d in decades for m in mults if self.lo <= m * 10.0**d <= self.hi]
        raw = (self.hi - self.lo) / n
        step = min((s * 10.0 ** math.floor(math.log10(raw)) for s in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
        return [self.lo + i * step for i in range(int((self.hi - self.lo) / step + 1e-9) + 1)]


def fmt(v: float) -> str:
    """Compact tick label."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:.3g}"


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 11, extra: str = "") -> str:
    attrs = f"x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' font-size='{size}' {FONT} {extra}"
    return f"<text {attrs}>{escape(s)}</text>"


def chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_log: bool = False,
    y_log: bool = False,
    width: int = 640,
    height: int = 360,
    x_range: tuple[float, float] | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    hlines: Sequence[tuple[float, str]] = (),
) -> str:
    """A line/scatter chart with axes, grid, legend, optional reference lines (e.g. the SLO)."""
    xs = [m.x for s in series for m in s.marks] or [1.0]
    ys = [m.y for s in series for m in s.marks] + [y for y, _ in hlines] or [1.0]
    pad = dict(l=58, r=16, t=14, b=44 + 16 * ((len(series) + 1) // 2))
    xlo, xhi = x_range or (min(xs), max(xs) * 1.05)
    if not x_log:
        xlo = min(0.0, xlo)
    ylo, yhi = (min(ys) / 1.5, max(ys) * 1.5) if y_log else (0.0, max(ys) * 1.1)
    ax = Axis(xlo, xhi if xhi > xlo else xlo + 1, pad["l"], width - pad["r"], x_log)
    ay = Axis(max(ylo, 1e-3) if y_log else ylo, yhi if yhi > ylo else ylo + 1, height - pad["b"], pad["t"], y_log)
    out = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img'>",
        "<rect width='100%' height='100%' fill='white'/>",
    ]
    for v in ay.ticks():
        out.append(f"<line x1='{ax.px0}' x2='{ax.px1}' y1='{ay(v):.1f}' y2='{ay(v):.1f}' stroke='#e5e7eb'/>")
        out.append(_text(ax.px0 - 6, ay(v) + 4, fmt(v), "end"))
    for v, label in x_ticks or [(t, fmt(t)) for t in ax.ticks()]:
        out.append(f"<line y1='{ay.px0}' y2='{ay.px1}' x1='{ax(v):.1f}' x2='{ax(v):.1f}' stroke='#f0f1f3'/>")
        out.append(_text(ax(v), ay.px0 + 15, label))
    out.append(
        f"<rect x='{ax.px0}' y='{ay.px1}' width='{ax.px1 - ax.px0}' height='{ay.px0 - ay.px1}' "
        "fill='none' stroke='#9ca3af'/>"
    )
    out.append(_text((ax.px0 + ax.px1) / 2, ay.px0 + 32, x_label, size=12))
    out.append(
        _text(
            14,
            (ay.px0 + ay.px1) / 2,
            y_label,
            size=12,
            extra=f"transform='rotate(-90 14 {(ay.px0 + ay.px1) / 2:.1f})'",
        )
    )
    for y, label in hlines:
        out.append(
            f"<line x1='{ax.px0}' x2='{ax.px1}' y1='{ay(y):.1f}' y2='{ay(y):.1f}' stroke='#dc2626' "
            "stroke-dasharray='6 4' stroke-width='1.5'/>"
        )
        out.append(_text(ax.px1 - 4, ay(y) - 5, label, "end", 11, "fill='#dc2626'"))
    for s in series:
        pts = sorted(s.marks, key=lambda m: m.x)
        if s.line and len(pts) > 1:
            d = " ".join(f"{ax(m.x):.1f},{ay(m.y):.1f}" for m in pts)
            dash = " stroke-dasharray='5 3'" if s.dashed else ""
            out.append(f"<polyline points='{d}' fill='none' stroke='{s.color}' stroke-width='2'{dash}/>")
        for m in pts if s.markers else [m for m in pts if not m.valid]:
            x, y, tip = ax(m.x), ay(m.y), f"<title>{escape(s.name)}: {escape(m.title)}</title>"
            if m.valid:
                out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{s.color}'>{tip}</circle>")
            else:
                out.append(
                    f"<g stroke='#dc2626' stroke-width='2'>{tip}<line x1='{x - 4:.1f}' y1='{y - 4:.1f}' "
                    f"x2='{x + 4:.1f}' y2='{y + 4:.1f}'/><line x1='{x - 4:.1f}' y1='{y + 4:.1f}' "
                    f"x2='{x + 4:.1f}' y2='{y - 4:.1f}'/></g>"
                )
    for i, s in enumerate(series):
        lx, ly = ax.px0 + (i % 2) * (width - pad["l"]) / 2, height - pad["b"] + 50 + 16 * (i // 2)
        dash = " stroke-dasharray='5 3'" if s.dashed else ""
        out.append(
            f"<line x1='{lx:.1f}' x2='{lx + 22:.1f}' y1='{ly - 4:.1f}' y2='{ly - 4:.1f}' "
            f"stroke='{s.color}' stroke-width='2.5'{dash}/>"
        )
        out.append(_text(lx + 27, ly, s.name, "start"))
    out.append("</svg>")
    return "".join(out)


def bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, float, str]], str]],
    *,
    unit: str,
    width: int = 640,
    label_w: int = 250,
) -> str:
    """Horizontal (stacked) bars: rows of (label, [(part, value, color)], note shown after the bar)."""
    bar_h, gap, top = 18, 8, 6
    height = top + len(rows) * (bar_h + gap) + 22
    hi = max((sum(v for _, v, _ in parts) for _, parts, _ in rows), default=1.0) or 1.0
    scale = (width - label_w - 130) / hi
    out = [
        f"<svg viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img'>",
        "<rect width='100%' height='100%' fill='white'/>",
    ]
    for i, (label, parts, note) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(_text(label_w - 8, y + 13, label, "end"))
        x = float(label_w)
        for name, v, color in parts:
            w = max(0.0, v * scale)
            out.append(
                f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar_h}' fill='{color}'>"
                f"<title>{escape(name)}: {v:.3g} {escape(unit)}</title></rect>"
            )
            x += w
        out.append(_text(x + 6, y + 13, note, "start", 11, "fill='#374151'"))
    out.append(f"<line x1='{label_w}' x2='{label_w}' y1='{top - 2}' y2='{height - 20}' stroke='#9ca3af'/>")
    out.append(_text(label_w, height - 6, f"0 {unit}", "start", 10, "fill='#6b7280'"))
    out.append("</svg>")
    return "".join(out)
