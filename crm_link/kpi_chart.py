"""One KPI over consecutive periods as a small SVG bar chart, drawn by hand (no plotting library)."""

from __future__ import annotations

from xml.sax.saxutils import escape

WIDTH, HEIGHT, PAD = 480, 200, 30


def svg(title: str, points: list[tuple[str, float | None]], no_value: str) -> str:
    """Bars scaled to the largest value; a period without a value (None) has no bar and reads `no_value`."""
    top = max((v for _, v in points if v is not None), default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        x = PAD + i * step
        h = 0.0 if value is None else (HEIGHT - 2 * PAD) * max(value, 0.0) / top
        text = escape(no_value) if value is None else f"{value:.3g}"
        bars.append(f'<rect x="{x + 2:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                    f'fill="#3b6ea5"><title>{escape(label)}: {text}</title></rect>'
                    f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD - h - 4:.1f}" text-anchor="middle">{text}</text>'
                    f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-size="10" '
            f'font-family="sans-serif"><text x="{PAD}" y="16" font-size="12">{escape(title)}</text>'
            f'{"".join(bars)}</svg>')
