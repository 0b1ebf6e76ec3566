"""asyrp-bench harness.

This package's top level stays import-light: `models` and `metrics` import the small shared utilities
below (`registry`, `errors`, `hashing`, `atomic`, `paths`, `runtime`) without pulling in the CLI or the stages.
"""

__version__ = "0.1.0"
