"""The report's plots as inline SVG strings: no plotting library, no script, nothing fetched when the page
opens (and no `xmlns` URL either: inline SVG in HTML5 needs none)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from factory_pipelines.lib.drift.records import Distribution

REFERENCE_COLOR, CURRENT_COLOR = "#9aa5b1", "#2f6fdf"
WARN_COLOR, ERROR_COLOR = "#d08c00", "#c62828"
FONT = 'font-family="sans-serif" font-size="10"'


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def bars(dist: Distribution, width: int = 600, height: int = 190) -> str:
    """Grouped bars, reference (grey) beside current (blue) per bin or category, with a legend."""
    left, bottom, top = 40, 40, 18
    n = max(len(dist.labels), 1)
    peak = max([*dist.reference, *dist.current, 1e-12])
    slot = (width - left - 10) / n
    plot_h = height - bottom - top
    parts = [f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#444"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" {FONT}>{_fmt(peak)}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" {FONT}>0</text>']
    every = max(1, math.ceil(n / 12))  # at most ~12 axis labels
    for i, label in enumerate(dist.labels):
        x = left + i * slot
        for j, (value, color) in enumerate(((dist.reference[i], REFERENCE_COLOR), (dist.current[i], CURRENT_COLOR))):
            h = plot_h * value / peak
            parts.append(f'<rect x="{x + 1 + j * slot * 0.45:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.43:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {value:.4g}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 12}" text-anchor="middle" {FONT}>'
                         f'{escape(label[:14])}</text>')
    parts += [*_legend(left, height - 10, (("reference", REFERENCE_COLOR), ("current", CURRENT_COLOR))), "</svg>"]
    return "".join(parts)


def trend(days: Sequence[str], values: Sequence[float | None], warn: float, error: float,
          width: int = 600, height: int = 150) -> str:
    """The metric's value per night (a line with dots; gaps where a night was insufficient) against its
    warn and error bounds (dashed)."""
    left, bottom, top = 40, 34, 12
    known = [v for v in values if v is not None and math.isfinite(v)]
    low = min([*known, warn, error, 0.0])
    high = max([*known, warn, error]) or 1.0
    high = high + (high - low) * 0.1 or 1.0
    plot_h, plot_w = height - bottom - top, width - left - 30  # room for the last day's label
    step = plot_w / max(len(days) - 1, 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#444"/>']
    for bound, color, name in ((warn, WARN_COLOR, "warn"), (error, ERROR_COLOR, "error")):
        parts.append(f'<line x1="{left}" y1="{y(bound):.1f}" x2="{width - 10}" y2="{y(bound):.1f}" stroke="{color}" '
                     f'stroke-dasharray="4 3"><title>{name} {bound:.4g}</title></line>'
                     f'<text x="{left - 4}" y="{y(bound) + 3:.1f}" text-anchor="end" {FONT} fill="{color}">{_fmt(bound)}</text>')
    points = [(left + i * step, y(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(points) > 1:
        parts.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
            CURRENT_COLOR, " ".join(f"{px:.1f},{py:.1f}" for px, py in points)))
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v):
            parts.append(f'<circle cx="{left + i * step:.1f}" cy="{y(v):.1f}" r="3" fill="{CURRENT_COLOR}">'
                         f'<title>{escape(days[i])}: {v:.4g}</title></circle>')
    every = max(1, math.ceil(len(days) / 8))
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            parts.append(f'<text x="{left + i * step:.1f}" y="{top + plot_h + 12}" text-anchor="middle" {FONT}>'
                         f'{escape(day[5:])}</text>')
    parts += [*_legend(left, height - 6, (("value", CURRENT_COLOR), ("warn", WARN_COLOR), ("error", ERROR_COLOR))),
              "</svg>"]
    return "".join(parts)


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (name, color) in enumerate(items):
        cx = x + i * 90
        out.append(f'<rect x="{cx}" y="{y - 8}" width="10" height="8" fill="{color}"/>'
                   f'<text x="{cx + 14}" y="{y}" {FONT}>{escape(name)}</text>')
    return out
