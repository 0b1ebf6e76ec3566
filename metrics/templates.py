"""The 79 ImageNet prompt templates of StyleGAN-NADA / DiffusionCLIP / Asyrp (`utils/text_templates.py`).

They are OpenAI's 80 CLIP ImageNet templates, in OpenAI's order, without "a photo of many {}.". We take them from
open_clip rather than retyping them; a test pins the result to the digest of the StyleGAN-NADA list.
"""

from __future__ import annotations

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

_DROPPED = "a photo of many {}."

IMAGENET_TEMPLATES_79: tuple[str, ...] = tuple(
    t("{}") for t in OPENAI_IMAGENET_TEMPLATES if t("{}") != _DROPPED
)


def expand(prompt: str, templates: tuple[str, ...] = IMAGENET_TEMPLATES_79) -> list[str]:
    """The prompt inserted into every template, e.g. "face" -> ["a bad photo of a face.", ...]."""
    return [t.format(prompt) for t in templates]
