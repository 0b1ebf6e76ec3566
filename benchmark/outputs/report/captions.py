"""The report's figures: their captions, and their order (the blog's: segmentation maps behind SC, the edit grids
in-domain and unseen, the linearity strip, the combination grid; then the other property figures, the training
loss and the per-image distributions)."""

from __future__ import annotations

from pathlib import Path

PROPERTY_CAPTIONS = {
    "property_linearity_curves": "Linearity: the measured target factor (oracle or CLIP projection, as the axis "
                                 "says) against the Δh scale (mean over images, 95% bootstrap CI). Negative scales "
                                 "were never trained.",
    "property_t_edit_sweep": "The edit's effect on the target factor when Δh is applied from t_edit on.",
    "property_consistency_relative_distance": "Timestep consistency: distance of each replacement of Δh_t "
                                              "(its mean over t, its mean over images, a trained global Δh) "
                                              "from the Δh_t edit, relative to the edit's own size.",
    "property_consistency_shift_ratio": "Timestep consistency: the replacement's target-factor shift over the "
                                        "Δh_t edit's (1 = the same effect).",
    "property_homogeneity": "Homogeneity: mean pairwise cosine of the edit's direction across images, in the "
                            "measured factors, pixels and h.",
}

# (stem prefix, rank): the blog's figures first, in its order
ORDER = (("figure5_segmentation", 0), ("edit_grid_in-domain", 1), ("edit_grid_unseen", 2), ("edit_grid_", 3),
         ("property_linearity_", 4), ("property_combination_", 5), ("property_t_edit", 6),
         ("property_consistency", 7), ("property_homogeneity", 8), ("loss_curves", 9), ("distribution_", 10))


def figure_rank(path: Path) -> tuple[int, str]:
    stem = path.stem
    rank = next((r for prefix, r in ORDER if stem.startswith(prefix)), len(ORDER))
    # within the linearity figures the strips come before the curves that sum them up
    return rank, ("~" if stem == "property_linearity_curves" else "") + stem


def caption(path: Path) -> str:
    stem = path.stem
    if stem == "figure5_segmentation":
        return ("Segmentation maps behind SC: the reference SC compares against, the edit, and the face parser's "
                "label map of each, with that image's SC (pixel agreement).")
    if stem.startswith("edit_grid_"):
        return (f"Edits, {stem.removeprefix('edit_grid_')} attributes: original, DDIM reconstruction, and the edit "
                "of each attribute (one row per image).")
    if stem == "loss_curves":
        return ("Training loss of each f_t: mean over the timesteps of each rollout (thin) and its running mean "
                "over 10 rollouts (bold).")
    if stem.startswith("property_linearity_") and stem != "property_linearity_curves":
        return f"Linearity strip, {stem.removeprefix('property_linearity_')}: the edit at each Δh scale."
    if stem.startswith("property_combination_"):
        return (f"Linear combination, image {stem.removeprefix('property_combination_')}: rows and columns are the "
                "two attributes' Δh coefficients.")
    if stem.startswith("property_"):
        return PROPERTY_CAPTIONS.get(stem, f"h-space property: {stem.removeprefix('property_')}.")
    return f"Per-image distribution of {stem.removeprefix('distribution_')} per attribute."
