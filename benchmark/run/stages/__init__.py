"""The stages of a run: invert → train → edit → measure → report.

Each cached stage is a module with one function that runs its units through a `Runner`; `benchmark.run.pipeline`
calls them in order. A stage's `code_version` is part of every key it writes: bump it when its output changes.
"""

from benchmark.run.runner import Stage

INVERT = Stage("invert", 1)
TRAIN = Stage("train", 1)
EDIT = Stage("edit", 2)  # 2: one unit per inversion chunk
MEASURE = Stage("measure", 2)  # 2: set metrics store their feature sets
REPORT = Stage("report", 1)
