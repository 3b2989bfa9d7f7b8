"""The plot above a published HTML board: FID against training epochs, one colour per model family.

An inline SVG drawn here (no plotting library, no script), so the page stays one self-contained file that
any browser renders. Epochs are read from the board's `epochs` cell: "800" is epochs, "400K iter" is
iterations, converted at batch 256 over ImageNet's 1,281,167 training images (the batch of SiT, REPA and
REPA-E), so 400K iterations = 80 epochs. Rows without a readable epoch count or FID are left out.
Measured rows are drawn with a black ring and a dagger, as the table marks them.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import pandas as pd

IMAGENET_TRAIN_IMAGES = 1_281_167
ITERATION_BATCH = 256
# Colour-blind-safe palette (Okabe-Ito, then Tableau); families beyond it repeat colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#76B7B2", "#EDC948", "#9C755F")
WIDTH, HEIGHT = 760, 360
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 190, 16, 44


@dataclass(frozen=True)
class PlotPoint:
    name: str
    family: str
    epochs: float
    fid: float
    measured: bool


def parse_epochs(cell: object) -> float | None:
    """Epochs from a board cell: "800" -> 800, "400K iter" -> 80 (batch 256), "7M iter" -> 1398.4."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    match = re.fullmatch(r"\s*([\d.]+)\s*([KM]?)\s*(iter|iters|iterations|steps)?\s*(\[.*\])?\s*",
                         str(cell), re.IGNORECASE)
    if match is None:
        return None
    value = float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6}[match.group(2).upper()]
    if match.group(3):
        value = value * ITERATION_BATCH / IMAGENET_TRAIN_IMAGES
    return value if value > 0 else None


def model_family(model: str) -> str:
    """The family a model belongs to: REPA-E, REPA, or the name without its size ("SiT-XL/2" -> "SiT",
    "U-ViT-H/2" -> "U-ViT", "LightningDiT (675M)" -> "LightningDiT")."""
    if "REPA-E" in model:
        return "REPA-E"
    if "REPA" in model:
        return "REPA"
    name = re.split(r"[/(]", model)[0].strip()
    return re.sub(r"-(XL|L|B|S|H|G|U|\d+)$", "", name) or model


def plot_points(board: pd.DataFrame) -> list[PlotPoint]:
    """One point per row with a FID and a readable epoch count."""
    if not {"epochs", "fid", "model"} <= set(board.columns):
        return []
    points = []
    for record in board.to_dict("records"):
        epochs, fid = parse_epochs(record["epochs"]), pd.to_numeric(record["fid"], errors="coerce")
        model = record["model"] if isinstance(record["model"], str) else str(record.get("name", ""))
        if epochs is None or not math.isfinite(fid) or fid <= 0:
            continue
        points.append(PlotPoint(str(record.get("name", model)), model_family(model), epochs, float(fid),
                                record.get("kind") == "measured"))
    return points


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = [m * 10**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    return [t for t in ticks if low <= t <= high]


def fid_epochs_svg(board: pd.DataFrame) -> str:
    """The SVG plot, or "" when the board has no plottable row."""
    points = plot_points(board)
    if not points:
        return ""
    families = sorted({p.family for p in points})
    colour = {family: PALETTE[i % len(PALETTE)] for i, family in enumerate(families)}
    x_low, x_high = min(p.epochs for p in points) / 1.3, max(p.epochs for p in points) * 1.3
    y_low, y_high = min(p.fid for p in points) / 1.3, max(p.fid for p in points) * 1.3
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(value: float) -> float:  # log axes: epochs and FID both span orders of magnitude
        return MARGIN_LEFT + plot_w * math.log(value / x_low) / math.log(x_high / x_low)

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h * (1 - math.log(value / y_low) / math.log(y_high / y_low))

    parts = [f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
             'stroke="#999"/>']
    for tick in _log_ticks(x_low, x_high):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{MARGIN_TOP}" '
                     f'y2="{MARGIN_TOP + plot_h}" stroke="#eee"/><text x="{x(tick):.1f}" '
                     f'y="{MARGIN_TOP + plot_h + 14}" text-anchor="middle">{tick:g}</text>')
    for tick in _log_ticks(y_low, y_high):
        parts.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#eee"/><text x="{MARGIN_LEFT - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{MARGIN_LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">training '
                 f'epochs (iterations at batch {ITERATION_BATCH} converted)</text>')
    parts.append(f'<text transform="translate(14 {MARGIN_TOP + plot_h / 2}) rotate(-90)" '
                 'text-anchor="middle">FID</text>')
    for point in sorted(points, key=lambda p: p.measured):  # measured on top
        ring = ' stroke="#000" stroke-width="2.5"' if point.measured else ' stroke="#fff" stroke-width="0.8"'
        label = f"{point.name}: FID {point.fid:g} at {point.epochs:.4g} epochs"
        label += " (measured)" if point.measured else ""
        parts.append(f'<circle class="point{" measured" * point.measured}" '
                     f'data-family="{html.escape(point.family)}" cx="{x(point.epochs):.1f}" '
                     f'cy="{y(point.fid):.1f}" r="{6 if point.measured else 4.5}" '
                     f'fill="{colour[point.family]}"{ring}><title>{html.escape(label)}</title></circle>')
    legend_x = WIDTH - MARGIN_RIGHT + 14
    for i, family in enumerate(families):
        row_y = MARGIN_TOP + 10 + 16 * i
        parts.append(f'<circle cx="{legend_x}" cy="{row_y}" r="5" fill="{colour[family]}"/>'
                     f'<text x="{legend_x + 10}" y="{row_y + 4}">{html.escape(family)}</text>')
    if any(p.measured for p in points):
        row_y = MARGIN_TOP + 10 + 16 * len(families)
        parts.append(f'<circle cx="{legend_x}" cy="{row_y}" r="5" fill="#fff" stroke="#000" '
                     'stroke-width="2.5"/>'
                     f'<text x="{legend_x + 10}" y="{row_y + 4}">† measured</text>')
    return (f'<svg id="fid-epochs" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-size="11" role="img" '
            'aria-label="FID against training epochs">'
            f'{"".join(parts)}</svg>')
