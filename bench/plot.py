"""SVG plots for docs/benchmarks.md, written by hand (no plotting library
to install): horizontal bars for medians with a whisker for the spread,
side-by-side panels of bars for several measures of the same engines, and
lines of a measure against a count; one colour per engine family so berth
stands out."""

import html

COLOURS = {"berth": "#2a7ab0", "podman": "#8a5a9e", "docker": "#d08a2a", "runc": "#6b8e23", "crun": "#a0522d"}
GREY = "#888888"
TITLE_H, FOOT_H = 40, 56


def colour(label):
    for k, c in COLOURS.items():
        if label.startswith(k) or f" {k}" in label:
            return c
    return GREY


def nice_max(v):
    """The smallest 1, 2 or 5 times a power of ten at or above `v`."""
    if v <= 0:
        return 1.0
    p = 1.0
    while p * 10 < v:
        p *= 10
    while p > v * 10:
        p /= 10
    for m in (1, 2, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def fmt(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _svg(width, height, title):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="13">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
            f'{html.escape(title)}</text>']


def _finish(out, path, height, note):
    if note:
        out.append(f'<text x="8" y="{height - 6}" font-size="11" fill="#666">{html.escape(note)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def _panel(out, x0, top, label_w, bar_w, row_h, rows, unit, subtitle=""):
    """One set of bars at (x0, top): rows of (label, median, low, high);
    low and high (or None) draw the whisker."""
    vmax = nice_max(max(max(r[1], r[3] if r[3] is not None else 0) for r in rows))
    x = lambda v: x0 + label_w + bar_w * v / vmax  # noqa: E731
    bottom = top + row_h * len(rows)
    if subtitle:
        out.append(f'<text x="{x0 + label_w + bar_w / 2}" y="{top - 14}" text-anchor="middle" '
                   f'font-weight="bold">{html.escape(subtitle)}</text>')
    for i in range(6):
        xv = x(vmax * i / 5)
        out.append(f'<line x1="{xv:.1f}" y1="{top - 8}" x2="{xv:.1f}" y2="{bottom}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{xv:.1f}" y="{bottom + 18}" text-anchor="middle" fill="#555">{vmax * i / 5:g}</text>')
    out.append(f'<text x="{x0 + label_w + bar_w / 2}" y="{bottom + 38}" text-anchor="middle" '
               f'fill="#555">{html.escape(unit)}</text>')
    for i, (label, med, lo, hi) in enumerate(rows):
        y = top + i * row_h
        ym = y + row_h / 2
        if label_w:
            out.append(f'<text x="{x0 + label_w - 8}" y="{ym + 4}" text-anchor="end">{html.escape(label)}</text>')
        out.append(f'<rect x="{x0 + label_w}" y="{y + 6}" width="{max(x(med) - x0 - label_w, 1):.1f}" '
                   f'height="{row_h - 12}" fill="{colour(label)}"/>')
        end = x(med)
        if lo is not None and hi is not None:
            out.append(f'<line x1="{x(lo):.1f}" y1="{ym}" x2="{x(hi):.1f}" y2="{ym}" stroke="#222"/>')
            for v in (lo, hi):
                out.append(f'<line x1="{x(v):.1f}" y1="{ym - 5}" x2="{x(v):.1f}" y2="{ym + 5}" stroke="#222"/>')
            end = max(end, x(hi))
        out.append(f'<text x="{end + 6:.1f}" y="{ym + 4}" fill="#222">{fmt(med)}</text>')


def bars(path, title, rows, unit="ms", note=""):
    """rows: (label, median, low, high); low/high draw the whisker (e.g.
    p10 and p90), None for none. Writes an SVG file at `path`."""
    label_w, bar_w, row_h, top = 260, 520, 30, 56
    width = label_w + bar_w + 90
    height = top + row_h * len(rows) + FOOT_H
    out = _svg(width, height, title)
    _panel(out, 0, top, label_w, bar_w, row_h, rows, unit)
    _finish(out, path, height, note)


def panels(path, title, parts, note=""):
    """Several measures of the same engines side by side: parts of
    (subtitle, unit, rows), rows as in `bars`; the labels of the first
    part name the rows of all."""
    label_w, bar_w, row_h, top, gap = 120, 190, 30, 76, 60
    n = max(len(p[2]) for p in parts)
    width = label_w + len(parts) * (bar_w + gap) + 10
    height = top + row_h * n + FOOT_H
    out = _svg(width, height, title)
    x0 = 0
    for i, (subtitle, unit, rows) in enumerate(parts):
        lw = label_w if i == 0 else 0
        _panel(out, x0, top, lw, bar_w, row_h, rows, unit, subtitle)
        x0 += lw + bar_w + gap
    _finish(out, path, height, note)


def lines(path, title, xs, series, xlabel, unit, note=""):
    """A measure against a count: series of (label, [(median, low, high)
    per x], dashed); low/high draw a whisker at each point (None for
    none). Writes an SVG file at `path`."""
    left, plot_w, plot_h, top, legend_w = 70, 480, 300, 50, 320
    width = left + plot_w + legend_w
    height = top + plot_h + FOOT_H + 10
    ymax = nice_max(max(max(p[2] if p[2] is not None else p[0] for p in pts) for _, pts, _ in series))
    xmax = max(xs)
    x = lambda v: left + plot_w * v / xmax  # noqa: E731
    y = lambda v: top + plot_h - plot_h * v / ymax  # noqa: E731
    out = _svg(width, height, title)
    for i in range(6):
        yv = y(ymax * i / 5)
        out.append(f'<line x1="{left}" y1="{yv:.1f}" x2="{left + plot_w}" y2="{yv:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 6}" y="{yv + 4:.1f}" text-anchor="end" fill="#555">{ymax * i / 5:g}</text>')
    for v in [0] + list(xs):
        out.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{top + plot_h}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{x(v):.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#555">{v:g}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 38}" text-anchor="middle" '
               f'fill="#555">{html.escape(xlabel)}</text>')
    out.append(f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" fill="#555" '
               f'transform="rotate(-90 16 {top + plot_h / 2})">{html.escape(unit)}</text>')
    for k, (label, pts, dashed) in enumerate(series):
        c = colour(label)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path_d = " ".join(f"{'M' if i == 0 else 'L'}{x(xv):.1f},{y(p[0]):.1f}" for i, (xv, p) in enumerate(zip(xs, pts)))
        out.append(f'<path d="{path_d}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for xv, (med, lo, hi) in zip(xs, pts):
            out.append(f'<circle cx="{x(xv):.1f}" cy="{y(med):.1f}" r="3.5" fill="{c}"/>')
            if lo is not None and hi is not None:
                out.append(f'<line x1="{x(xv):.1f}" y1="{y(lo):.1f}" x2="{x(xv):.1f}" y2="{y(hi):.1f}" '
                           f'stroke="{c}"/>')
        ly = top + 10 + k * 22
        lx = left + plot_w + 20
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 36}" y="{ly + 4}">{html.escape(label)}</text>')
    _finish(out, path, height, note)
