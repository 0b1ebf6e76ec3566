#!/usr/bin/env python
"""Thin entry point: `python run_all.py [--suite NAME]` runs a suite; the real CLI lives in `benchmark.cli`."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_command="run"))
