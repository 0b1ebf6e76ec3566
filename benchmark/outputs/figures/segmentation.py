"""Figure 5: the segmentation maps behind SC. For one test image, one row per edit: the reference SC compares
against (the DDIM reconstruction, as the authors did), its label map, the edit and its label map, titled with that
image's SC (pixel agreement of the two maps), all in the parser's colours, with the class legend beneath.

The label maps are the run's own (`segmentation.json`, written when the run measured SC), so the figure needs
neither the parser nor its weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.outputs.figure_style import figure_style, plt, save_figure
from benchmark.outputs.figures.run_files import CannotMake, RunFiles

# The BiSeNet face parser's colours (zllrunning/face-parsing.PyTorch `vis_parsing_maps`, by label index; its
# background is drawn white), and CelebAMask-HQ's mask colours by class name (its own visualisation), which also
# colour any other label set by name (eye and brow take the left eye's and left brow's colours).
BISENET_COLOURS = [(255, 255, 255), (255, 85, 0), (255, 170, 0), (255, 0, 85), (255, 0, 170), (0, 255, 0),
                   (85, 255, 0), (170, 255, 0), (0, 255, 85), (0, 255, 170), (0, 0, 255), (85, 0, 255),
                   (170, 0, 255), (0, 85, 255), (0, 170, 255), (255, 255, 0), (255, 255, 85), (255, 255, 170),
                   (255, 0, 255)]
CELEBAMASK_COLOURS = {
    "background": (0, 0, 0), "skin": (204, 0, 0), "nose": (76, 153, 0), "eye_g": (204, 204, 0),
    "l_eye": (51, 51, 255), "r_eye": (204, 0, 204), "l_brow": (0, 255, 255), "r_brow": (255, 204, 204),
    "l_ear": (102, 51, 0), "r_ear": (255, 0, 0), "mouth": (102, 204, 0), "u_lip": (255, 255, 0),
    "l_lip": (0, 0, 153), "hair": (0, 0, 204), "hat": (255, 51, 153), "ear_r": (0, 204, 204),
    "neck_l": (0, 51, 0), "neck": (255, 153, 51), "cloth": (0, 204, 0),
}
ALIASES = {"eye": "l_eye", "brow": "l_brow", "ear": "l_ear", "lip": "u_lip"}
FIGURE = "figure5_segmentation"


def palette(label_set: str, classes: list[str]) -> np.ndarray:
    """K×3 uint8 colours, one per label index, as the parser draws them."""
    if label_set == "bisenet-face-parsing" and len(classes) <= len(BISENET_COLOURS):
        return np.asarray(BISENET_COLOURS[: len(classes)], dtype=np.uint8)
    cmap = plt.get_cmap("tab20")
    out = []
    for i, name in enumerate(classes):
        colour = CELEBAMASK_COLOURS.get(name) or CELEBAMASK_COLOURS.get(ALIASES.get(name, ""))
        out.append(colour or tuple(int(255 * c) for c in cmap(i % 20)[:3]))
    return np.asarray(out, dtype=np.uint8)


def colourise(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    if labels.max(initial=0) >= len(colours):
        raise CannotMake(f"a label map has label {int(labels.max())}, the label set only {len(colours)} classes")
    return colours[labels]


def _sc_entry(run: RunFiles) -> tuple[str, dict]:
    if not run.segmentation:
        measured = any(mv.spec.get("metric") == "sc@1" for per in run.result.metrics.values() for mv in per.values())
        if not measured:
            raise CannotMake("the run measured no SC (sc@1)")
        raise CannotMake("the run folder has no label maps (segmentation.json): it was written before runs kept "
                         "them; rerun the same command (every cached stage is reused) to get them")
    key = next(iter(run.segmentation))
    return key, run.segmentation[key]


def segmentation_figure(run: RunFiles, out: Path, fmt: str, *, image_id: str | None = None) -> list[Path]:
    key, entry = _sc_entry(run)
    maps = entry["maps"]
    image_id = image_id or next(iter(maps))
    if image_id not in maps:
        raise CannotMake(f"no label maps for image {image_id!r}; the run kept {', '.join(maps)}")
    reference = entry.get("reference", "reconstruction")
    edits = [k for k in run.edit_keys() if k in maps[image_id]]
    if not edits:
        raise CannotMake("the run's label maps hold no edit at Δh scale 1")
    colours = palette(entry.get("label_set", ""), entry["classes"])
    grid_cells = run.result.grid_images.get(image_id, {})
    with figure_style():
        fig, axes = plt.subplots(len(edits), 4, figsize=(6.4, 1.75 * len(edits) + 0.9), squeeze=False,
                                 layout="constrained")
        ref_labels = run.image(maps[image_id][reference], mode="L")
        for i, edit in enumerate(edits):
            sc = run.per_image_value(edit, key, image_id)
            cells = [(run.image(grid_cells[reference]) if reference in grid_cells else None, f"{reference}"),
                     (colourise(ref_labels, colours), "its labels"),
                     (run.image(grid_cells[edit]) if edit in grid_cells else None, edit),
                     (colourise(run.image(maps[image_id][edit], mode="L"), colours),
                      "SC = —" if sc is None else f"SC = {sc:.3f}")]
            for ax, (img, title) in zip(axes[i], cells, strict=True):
                if img is not None:
                    ax.imshow(img, interpolation="nearest")
                ax.set_title(title, fontsize=7.5)
                ax.set_axis_off()
        present = sorted(set(np.unique(ref_labels)) | {int(v) for e in edits
                                                      for v in np.unique(run.image(maps[image_id][e], mode="L"))})
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c] / 255, ec="0.6", lw=0.4) for c in present]
        fig.legend(handles, [entry["classes"][c] for c in present], loc="outside lower center",
                   ncol=min(7, len(present)), fontsize=6.5, handlelength=1.0)
        fig.suptitle(f"Segmentation maps behind SC ({key}, {entry.get('backend') or 'face parser'}); "
                     f"image {image_id}", fontsize=8.5)
        return [save_figure(fig, out / f"{FIGURE}.{fmt}")]
