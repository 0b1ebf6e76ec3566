"""Captions from factors: the small CLIP's training text, and the vocabulary the synthetic attributes' prompts use.

Every factor that an edit targets is named by words whose meaning follows the factor monotonically (a more curved
mouth is "smiling", a darker skin "tanned"), so the CLIP can learn directions, not only classes. Phrases are
shuffled and some are dropped at random, so short prompts such as "face" / "smiling face" lie inside the training
distribution.
"""

from __future__ import annotations

import numpy as np

from benchmark.synthetic.renderer import Factors

# Prompt vocabulary of the synthetic attributes (manifests/attributes/synthetic-*.yaml use exactly these).
NEUTRAL_PROMPT = "face"
PROMPTS = {
    "smiling": "smiling face",
    "sad": "sad face",
    "tanned": "tanned face",
    "zombie": "green zombie face",
}


def mouth_word(c: float) -> str | None:
    if c >= 0.35:
        return "smiling"
    if c <= -0.35:
        return "sad"
    return "neutral" if abs(c) < 0.15 else None


def skin_words(f: Factors) -> list[str]:
    words = []
    if f.green >= 0.5:
        words.append("green zombie")
    if f.tan >= 0.6:
        words.append("tanned")
    elif f.tan <= 0.25:
        words.append("pale")
    return words


def _hair_phrase(f: Factors) -> str:
    colour = "black" if f.hair_colour < 0.25 else "brown" if f.hair_colour < 0.7 else "blonde"
    length = "short" if f.hair_length < 0.35 else "long" if f.hair_length > 0.65 else ""
    return " ".join(w for w in ("with", length, colour, "hair") if w)


def _eye_phrase(f: Factors) -> str | None:
    size = "big" if f.eye_size > 0.65 else "small" if f.eye_size < 0.35 else ""
    gap = "wide-set" if f.eye_spacing > 0.7 else "close-set" if f.eye_spacing < 0.3 else ""
    return f"with {size} {gap} eyes".replace("  ", " ") if size or gap else None


def _shape_word(f: Factors) -> str | None:
    return "round" if f.face_shape > 0.7 else "narrow" if f.face_shape < 0.3 else None


def _background_phrase(f: Factors) -> str:
    names = ((0.06, "red"), (0.12, "orange"), (0.2, "yellow"), (0.45, "green"), (0.55, "cyan"), (0.7, "blue"))
    name = next((n for limit, n in names if f.background_hue < limit), "purple")
    return f"on a {name} background"


def caption(f: Factors, rng: np.random.Generator | None = None, *, keep: float = 0.7) -> str:
    """A caption of `f`. With `rng`, adjectives are shuffled and each optional phrase is kept with prob. `keep`;
    the mouth and skin words (the edit attributes) are kept with a higher probability."""
    adjectives = [w for w in (mouth_word(f.mouth_curvature), *skin_words(f), _shape_word(f)) if w]
    extras = [p for p in (_hair_phrase(f), _eye_phrase(f), _background_phrase(f)) if p]
    if rng is not None:
        important = {mouth_word(f.mouth_curvature), *skin_words(f)}
        adjectives = [w for w in adjectives if rng.random() < (0.9 if w in important else keep)]
        adjectives = [adjectives[i] for i in rng.permutation(len(adjectives))]
        extras = [p for p in extras if rng.random() < keep * 0.6]
        extras = [extras[i] for i in rng.permutation(len(extras))]
    return " ".join([*adjectives, NEUTRAL_PROMPT, *extras])
