"""Label sets of face parsers: class names in label order, and explicit remaps between them.

Two parsers can call the same class by different numbers (CelebAMask-HQ's ground-truth masks put `nose` at 2,
the BiSeNet `79999_iter.pth` parser at 10). Remaps go by class name, so they are checked, invertible where both
sets name the same classes, and never a hand-typed permutation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from benchmark.core.errors import DataError


@dataclass(frozen=True)
class LabelSet:
    """`classes[i]` is the name of label i. Names are unique."""

    name: str
    classes: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"label set {self.name!r} has duplicate class names")

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise DataError(f"class {class_name!r} is not in label set {self.name!r} "
                            f"(classes: {', '.join(self.classes)})") from None

    def remap_table(self, target: LabelSet, merge: Mapping[str, str] | None = None) -> torch.Tensor:
        """A lookup table `t` with `t[label_in_self] = label_in_target`, matching classes by name.

        `merge` maps a class of this set to a differently named class of `target` (e.g. `{"l_eye": "eyes"}` for a
        coarser segmenter). A class with no counterpart in `target` is an error that lists the missing names.
        """
        merge = dict(merge or {})
        missing = [c for c in self.classes if merge.get(c, c) not in target.classes]
        if missing:
            raise DataError(f"cannot remap label set {self.name!r} to {target.name!r}: no counterpart for "
                            f"{', '.join(missing)}", fix="pass merge={source_class: target_class} for those classes")
        return torch.tensor([target.classes.index(merge.get(c, c)) for c in self.classes], dtype=torch.long)

    def remap(self, labels: torch.Tensor, target: LabelSet, merge: Mapping[str, str] | None = None) -> torch.Tensor:
        """Relabel an integer label map from this set's numbering to `target`'s."""
        if labels.is_floating_point():
            raise DataError(f"expected an integer label map, got dtype {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self)):
            raise DataError(f"labels outside [0, {len(self)}) for label set {self.name!r}")
        return self.remap_table(target, merge).to(labels.device)[labels.long()]

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes)}


#: The order of CelebAMask-HQ's ground-truth masks (`face_parsing/Data_preprocessing/g_mask.py`), also used by
#: the SegFormer parser `jonathandinu/face-parsing` since its config's label fix (revision 373bfce).
CELEBAMASK_HQ = LabelSet("celebamask-hq", (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
))

#: The order of zllrunning/face-parsing.PyTorch's BiSeNet (`79999_iter.pth`), which the Asyrp authors' SC used.
BISENET_FACE_PARSING = LabelSet("bisenet-face-parsing", (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
))
