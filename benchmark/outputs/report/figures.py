"""Figures of the report (matplotlib, PNG, in the one style of `benchmark.outputs.figure_style`): edit grids as
the reproduction study's blog Figures 6–7 show them, per-image metric distributions, loss curves, and the
h-space properties' curves and bars.

Edit grid: one row per image; columns Original, Reconstruction, then one edit per attribute; one figure per domain
(in-domain, unseen), as the blog shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.ticker
import numpy as np

from benchmark.outputs.figure_style import image_cell, plt, save_figure
from benchmark.outputs.training_speed import rollout_means  # noqa: F401  (the loss curves draw these)


def _save(fig, path: Path) -> Path:
    """In the one style of every figure (`benchmark.outputs.figure_style`; callers draw inside `figure_style()`)."""
    return save_figure(fig, path)


def edit_grid(rows: Sequence[str], columns: Sequence[str], images: Mapping[tuple[str, str], np.ndarray],
              path: Path, *, title: str = "") -> Path:
    """`images[(row, column)]` is an H×W×3 uint8 array; a missing cell is left blank."""
    n_rows, n_cols = len(rows), len(columns)
    cell = 1.6
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows + (0.35 if title else 0)),
                             squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.03})
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            ax = axes[i][j]
            image_cell(ax, images.get((row, col)))
            if i == 0:  # an ablation arm's name goes on its own line: `smiling\n[pixel-channel]`
                ax.set_title(col.replace("[", "\n["), fontsize=9)
            if j == 0:
                ax.set_ylabel(row, fontsize=7, rotation=90)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def metric_distribution(metric: str, per_attribute: Mapping[str, Sequence[float]], path: Path, *,
                        direction: str = "higher", mean_ci: Mapping[str, tuple[float, float, float]] | None = None,
                        ) -> Path:
    """Box plot with the per-image values scattered over it, one box per attribute; the mean and its 95% CI
    (from the results, not recomputed here) drawn beside each box."""
    names = list(per_attribute)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
    data = [np.asarray(per_attribute[n], dtype=float) for n in names]
    ax.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, size=len(values)), values, s=6, alpha=0.5, color="tab:blue",
                   linewidths=0)
        if mean_ci and names[i - 1] in mean_ci and None not in mean_ci[names[i - 1]]:
            mean, low, high = mean_ci[names[i - 1]]
            ax.errorbar(i + 0.33, mean, yerr=[[mean - low], [high - mean]], fmt="o", color="tab:red", ms=3,
                        capsize=2, lw=1)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax.set_ylabel(f"{metric} ({'↑' if direction == 'higher' else '↓'} better)")
    ax.set_title(f"{metric}: per-image values (red: mean, 95% CI)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def loss_curves(histories: Mapping[str, Mapping[str, Sequence]], path: Path, *,
                group: Callable[[str], tuple[str, str]] = lambda key: (key, key), window: int = 10) -> Path:
    """Training loss per rollout (thin) and its running mean over `window` rollouts (bold; the raw means, with
    markers, when there are fewer rollouts); one panel per group (`group(key) -> (panel, line label)`: an
    ablation groups by attribute, one line per f_t arm, each arm one colour in every panel)."""
    panels: dict[str, list[tuple[str, np.ndarray]]] = {}
    colours: dict[str, str] = {}
    for key, h in histories.items():
        panel, label = group(key)
        colours.setdefault(label, f"C{len(colours) % 10}")
        panels.setdefault(panel, []).append((label, rollout_means(h["t"], h["loss"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=True):
        for label, means in lines:
            x = np.arange(1, len(means) + 1)
            if len(means) < window:
                ax.plot(x, means, color=colours[label], lw=1.6, marker="o", ms=3, label=label)
                continue
            ax.plot(x, means, color=colours[label], lw=0.6, alpha=0.35)
            smooth = np.convolve(means, np.ones(window) / window, mode="valid")
            ax.plot(x[window - 1:], smooth, color=colours[label], lw=1.6, label=label)
        ax.set_title(panel, fontsize=9)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("rollout (batch of images)")
        ax.set_ylabel("training loss (mean over t)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def response_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence, Sequence]], path: Path,
                    *, xlabel: str, ylabel: str, title: str = "", vlines: Mapping[str, float] | None = None,
                    untrained: tuple[float, float] | None = None) -> Path:
    """Mean response with its 95% CI as a band, one line per label (`curves[label] = (x, mean, low, high)`;
    a None CI end is not drawn). `untrained` shades an x range the f_t never saw (e.g. negative Δh scales)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    if untrained is not None:
        ax.axvspan(*untrained, color="0.92", zorder=0, label="never trained")
    for i, (label, (x, mean, low, high)) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(x, mean, marker="o", ms=3.5, color=color, label=label)
        if all(v is not None for v in (*low, *high)):
            ax.fill_between(x, low, high, color=color, alpha=0.2, linewidths=0)
        if vlines and label in vlines:
            ax.axvline(vlines[label], color=color, ls=":", lw=1)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)


def score_bars(groups: Mapping[str, Mapping[str, tuple[float, float | None, float | None]]], path: Path, *,
               ylabel: str, title: str = "", reference: float | None = None) -> Path:
    """Grouped bars with 95% CI whiskers: `groups[group][bar] = (mean, low, high)`; `reference` draws a line
    (e.g. 1 = the same effect, 0 = none)."""
    names = list(groups)
    bars = list(dict.fromkeys(b for g in groups.values() for b in g))
    width = 0.8 / max(len(bars), 1)
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(names) * max(1, len(bars) / 2), 3.2))
    for j, bar in enumerate(bars):
        xs, means, errs = [], [], [[], []]
        for i, g in enumerate(names):
            if bar not in groups[g]:
                continue
            mean, low, high = groups[g][bar]
            xs.append(i + (j - (len(bars) - 1) / 2) * width)
            means.append(mean)
            errs[0].append(0 if low is None else mean - low)
            errs[1].append(0 if high is None else high - mean)
        ax.bar(xs, means, width=width * 0.9, yerr=errs, capsize=2, color=f"C{j}", label=bar)
    if reference is not None:
        ax.axhline(reference, color="0.3", ls="--", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)
