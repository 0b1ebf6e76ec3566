"""Test tiers.

- Fast tier (default, CI): tiny seeded models built in-process, the real fixture files in ../shared/fixtures.
- `weights`: needs real downloaded weights; each such test skips with the fetch command that would enable it.
- `gpu`: needs CUDA; skipped here and in CI.
"""

from __future__ import annotations

import os

import pytest
import torch

from benchmark.core.paths import fixtures_dir


def pytest_configure(config):
    # Under pytest-xdist (the README's test command runs two workers) each worker takes its share of the cores:
    # two workers with torch's default of one thread per core would oversubscribe the CPU.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


#: the longest test files, measured in CI; handed out first (pyproject's `--no-loadscope-reorder` keeps this
#: order under pytest-xdist) so that no worker is left alone with one of them at the end
LONGEST_FIRST = ("test_rehearse.py", "test_scale_out_quick.py", "test_bias.py", "test_e2e.py",
                 "test_regression_synthetic.py", "test_executors.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
               else len(LONGEST_FIRST))  # stable: every other test keeps its order
    no_cuda = pytest.mark.skip(reason="needs a CUDA device (marker `gpu`)")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)


@pytest.fixture(scope="session")
def fixtures():
    """Path to ../shared/fixtures; tests that need it skip when it is absent."""
    root = fixtures_dir()
    if not root.is_dir():
        pytest.skip(f"shared fixtures not found at {root} (set ASYRP_FIXTURES)")
    return root


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, then the previous count (conformance tests over many small models)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
