"""Names of ablation arms in results: attribute `smiling` trained with the f_t arm `conv` is `smiling[conv]`.

Kept free of torch so the report (and `run_all.py report`) can group results by arm without loading models.
"""

from __future__ import annotations


def arm_name(attribute: str, arm: str) -> str:
    return f"{attribute}[{arm}]"


def split_arm(name: str) -> tuple[str, str | None]:
    """`smiling[conv]` -> ("smiling", "conv"); `smiling` -> ("smiling", None)."""
    if name.endswith("]") and "[" in name:
        base, _, arm = name[:-1].partition("[")
        return base, arm
    return name, None
