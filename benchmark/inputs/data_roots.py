"""Where a run's images come from: the folder a dataset is read from, and which datasets a run reads.

One definition for `validate` and the planner: the test set always; the training set only when some selected
attribute is trained (not loaded from a released checkpoint), from `--train-data`, or from `--data` when the
training images are the same dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmark.core.errors import DataError
from benchmark.core.paths import REPO_ROOT, fixtures_dir
from benchmark.inputs.manifests import Resolved, ResolvedSuite
from benchmark.inputs.selection import selected_names


def data_root(dataset: Resolved, given: str | Path | None, flag: str) -> Path:
    """The folder the user named; for data shipped in the repo or the shared fixtures, their known place."""
    if given is not None:
        return Path(given).expanduser()
    manifest = dataset.manifest
    if "in-repo" in manifest.distributions:  # shipped with the code (the synthetic world's splits)
        return REPO_ROOT
    if "fixtures" in manifest.distributions:
        return fixtures_dir() / "celebahq"
    raise DataError(f"no data folder given for {dataset.ref}",
                    fix=f"pass {flag} PATH (a folder, zip or LMDB of one of: {', '.join(manifest.distributions)}; "
                        "docs/data.md says where to get them)")


def trains_any(resolved: ResolvedSuite, attributes: Sequence[str] | None = None) -> bool:
    """Whether a run trains at least one f_t: the suite trains and a selected attribute has no released one."""
    if resolved.suite.train is None:
        return False
    return any(n not in resolved.ft_checkpoints for n in selected_names(resolved, attributes))


def training_source(resolved: ResolvedSuite, data: str | Path | None,
                    train_data: str | Path | None) -> tuple[Resolved, str | Path | None]:
    """The training dataset and the folder the user gave for it (`--data` serves both when they coincide)."""
    train_ds = resolved.train_dataset or resolved.dataset
    same = resolved.dataset is not None and train_ds.ref == resolved.dataset.ref
    return train_ds, train_data if train_data is not None else (data if same else None)


def datasets_to_read(resolved: ResolvedSuite, data, train_data, attributes=None, distribution=None) -> list[tuple]:
    """(dataset, given folder, flag, label, distribution) for each dataset a run reads, test set first; a training
    set that is the test set read from the same folder is not listed twice."""
    out = []
    if resolved.dataset is not None:
        out.append((resolved.dataset, data, "--data", "dataset", distribution))
    noise_training = resolved.suite.train is not None and resolved.suite.train.source is not None
    if trains_any(resolved, attributes) and not noise_training and (resolved.train_dataset or resolved.dataset):
        train_ds, given = training_source(resolved, data, train_data)
        if not out or train_ds.ref != resolved.dataset.ref or given != data:
            out.append((train_ds, given, "--train-data", "train dataset", None))
    return out
