"""The one matplotlib style of every figure (the report's and the blog's), and saving in PNG, PDF or SVG.

PDF and SVG keep text, axes and curves as vectors (image cells stay raster inside them); PNG is written at 200 dpi.
Every figure is written atomically, with fixed metadata so the same data gives the same file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.core.atomic import atomic_path  # noqa: E402

FORMATS = ("png", "pdf", "svg")
DPI = 200
STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]),
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, no Type-3 fonts
    "svg.fonttype": "none",  # text stays text in SVGs
    "svg.hashsalt": "asyrp-bench",  # fixed ids: the same figure gives the same SVG
}
_METADATA = {"png": {"Software": "asyrp-bench"}, "pdf": {"Creator": "asyrp-bench", "CreationDate": None},
             "svg": {"Creator": "asyrp-bench", "Date": None}}


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def save_figure(fig, path: Path, fmt: str | None = None) -> Path:
    """Write `fig` to `path` (its suffix, or `fmt`, is the format) and close it."""
    fmt = fmt or path.suffix.lstrip(".") or "png"
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = path.with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
    plt.close(fig)
    return path


def image_cell(ax, img) -> None:
    """One cell of an image grid: the H×W×3 image (none: left blank), no ticks, no frame."""
    if img is not None:
        ax.imshow(img, interpolation="lanczos" if img.shape[0] < 128 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
