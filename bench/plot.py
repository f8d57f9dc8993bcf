"""SVG plots for docs/benchmarks.md, written by hand (no plotting library
to install): horizontal bars for medians with a whisker for the spread,
one colour per engine family so berth stands out."""

import html

COLOURS = {"berth": "#2a7ab0", "podman": "#8a5a9e", "docker": "#d08a2a", "runc": "#6b8e23", "crun": "#a0522d"}
GREY = "#888888"


def colour(label):
    for k, c in COLOURS.items():
        if label.startswith(k) or f" {k}" in label:
            return c
    return GREY


def nice_max(v):
    """The smallest 1, 2 or 5 times a power of ten at or above `v`."""
    p = 1.0
    while p * 10 < v:
        p *= 10
    while p > v * 10:
        p /= 10
    for m in (1, 2, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def bars(path, title, rows, unit="ms", note=""):
    """rows: (label, median, low, high); low/high draw the whisker (e.g.
    p10 and p90). Writes an SVG file at `path`."""
    label_w, bar_w, row_h, top = 260, 520, 30, 56
    width = label_w + bar_w + 90
    height = top + row_h * len(rows) + 56
    vmax = nice_max(max(max(r[1], r[3]) for r in rows))
    x = lambda v: label_w + bar_w * v / vmax  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
           f'{html.escape(title)}</text>']
    for i in range(6):
        v = vmax * i / 5
        xv = x(v)
        out.append(f'<line x1="{xv:.1f}" y1="{top - 8}" x2="{xv:.1f}" y2="{top + row_h * len(rows)}" '
                   f'stroke="#e4e4e4"/>')
        out.append(f'<text x="{xv:.1f}" y="{top + row_h * len(rows) + 18}" text-anchor="middle" '
                   f'fill="#555">{v:g}</text>')
    out.append(f'<text x="{label_w + bar_w / 2}" y="{top + row_h * len(rows) + 38}" text-anchor="middle" '
               f'fill="#555">{html.escape(unit)}</text>')
    for i, (label, med, lo, hi) in enumerate(rows):
        y = top + i * row_h
        c = colour(label)
        out.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">{html.escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 6}" width="{max(x(med) - label_w, 1):.1f}" '
                   f'height="{row_h - 12}" fill="{c}"/>')
        ym = y + row_h / 2
        out.append(f'<line x1="{x(lo):.1f}" y1="{ym}" x2="{x(hi):.1f}" y2="{ym}" stroke="#222"/>')
        for v in (lo, hi):
            out.append(f'<line x1="{x(v):.1f}" y1="{ym - 5}" x2="{x(v):.1f}" y2="{ym + 5}" stroke="#222"/>')
        out.append(f'<text x="{max(x(med), x(hi)) + 6:.1f}" y="{ym + 4}" fill="#222">{med:.1f}</text>')
    if note:
        out.append(f'<text x="8" y="{height - 6}" font-size="11" fill="#666">{html.escape(note)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
