"""The blog's figures from a finished run (`run_all.py figures RUN_DIR`): Figure 5 (segmentation maps behind SC),
Figures 6–7 (edit grids), Figure 8 (linearity strip), Figure 9 (combination grid) and Table 2 (paper vs study vs
this run), in the one style of `benchmark.outputs.figure_style`, as PNG, PDF or SVG."""

from benchmark.outputs.figures.blog import FIGURES, FiguresMade, make_figures
from benchmark.outputs.figures.run_files import CannotMake, RunFiles

__all__ = ["FIGURES", "CannotMake", "FiguresMade", "RunFiles", "make_figures"]
