"""`run_all.py figures RUN_DIR`: the blog's figures and Table 2 from a finished run, in one style and format.

Each entry of `FIGURES` makes one item from the run folder alone (no model is loaded) or says why this run
cannot: an ablation run has no h-space property data, an old run no label maps, and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.outputs.figure_style import FORMATS
from benchmark.outputs.figures.grids import combination_figure, edit_grid_figure, linearity_figure
from benchmark.outputs.figures.run_files import CannotMake, RunFiles
from benchmark.outputs.figures.segmentation import segmentation_figure
from benchmark.outputs.figures.table2 import table2_files

BLOG_DIR = "blog"  # default output: <run>/blog/

#: (name, what it is, maker(run, out, fmt) -> paths), in the blog's order
FIGURES: list[tuple[str, str, Callable[[RunFiles, Path, str], list[Path]]]] = [
    ("Figure 5", "segmentation maps behind SC", segmentation_figure),
    ("Figure 6", "edit grid, in-domain attributes", partial(edit_grid_figure, domain="in-domain")),
    ("Figure 7", "edit grid, unseen attributes", partial(edit_grid_figure, domain="unseen")),
    ("Figure 8", "linearity strip over Δh scale", linearity_figure),
    ("Figure 9", "linear combination grid", combination_figure),
    ("Table 2", "paper vs reproduction study vs this run (Markdown, LaTeX)", table2_files),
]


@dataclass
class FiguresMade:
    out: Path
    made: list[tuple[str, str, list[Path]]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (name, what, why not)

    def lines(self) -> list[str]:
        out = [f"{name} ({what}): {', '.join(str(p) for p in paths)}" for name, what, paths in self.made]
        out += [f"{name} ({what}): cannot make: {why}" for name, what, why in self.skipped]
        return out


def make_figures(run_dir: str | Path, out: str | Path | None = None, fmt: str = "png") -> FiguresMade:
    if fmt not in FORMATS:
        raise BenchError(f"figure format {fmt!r} is not one of {', '.join(FORMATS)}",
                         fix="pass --format png, pdf or svg")
    run = RunFiles.load(run_dir)
    folder = Path(out) if out is not None else run.folder / BLOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    report = FiguresMade(folder)
    for name, what, maker in FIGURES:
        try:
            report.made.append((name, what, maker(run, folder, fmt)))
        except CannotMake as why:
            report.skipped.append((name, what, str(why)))
    return report
