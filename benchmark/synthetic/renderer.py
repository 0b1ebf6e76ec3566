"""The synthetic face world's renderer: a factor vector -> a 64×64 RGB face and its label mask.

Deterministic and anti-aliased: every shape is an implicit region evaluated on a 4× supersampled grid, painted
back to front, and the RGB image is the 4×4 area mean (the mask takes the majority class of the same 16 samples).
Coordinates: x right, y down, both in [-1, 1] across the image.

Identity-specific details (nose, brows, iris colour, hairline parting, ear size, a mole) come from the identity
seed alone, so they stay fixed when an edit changes the smile or the skin tone.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass, fields

import numpy as np

IMAGE_SIZE = 64
SUPERSAMPLE = 4

# Fixed label order of the masks (index = label value). Never reorder: masks and the segmenter depend on it.
CLASSES = ("background", "skin", "hair", "eye", "brow", "nose", "mouth")
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

# Continuous factors, with their ranges. `green` is the unseen skin colour: the DDPM's training set has green = 0.
FACTOR_RANGES = {
    "face_shape": (0.0, 1.0),       # 0 narrow oval ... 1 round and wide
    "tan": (0.0, 1.0),              # 0 pale ... 1 deeply tanned
    "green": (0.0, 1.0),            # 0 human skin ... 1 green "zombie" skin (unseen by the DDPM)
    "hair_colour": (0.0, 1.0),      # 0 black ... 0.5 brown ... 1 blonde
    "hair_length": (0.0, 1.0),      # 0 short ... 1 long, to the shoulders
    "eye_size": (0.0, 1.0),
    "eye_spacing": (0.0, 1.0),      # 0 close-set ... 1 wide-set
    "mouth_curvature": (-1.0, 1.0),  # -1 sad ... 0 neutral ... +1 smiling
    "background_hue": (0.0, 0.75),  # HSV hue, red ... violet (no wrap-around, so it is a linear factor)
}
FACTOR_NAMES = tuple(FACTOR_RANGES)


@dataclass(frozen=True)
class Factors:
    """One face. `identity` seeds the identity-specific details; the rest are the continuous factors above."""

    face_shape: float = 0.5
    tan: float = 0.3
    green: float = 0.0
    hair_colour: float = 0.3
    hair_length: float = 0.5
    eye_size: float = 0.5
    eye_spacing: float = 0.5
    mouth_curvature: float = 0.0
    background_hue: float = 0.55
    identity: int = 0

    def __post_init__(self) -> None:
        for name, (lo, hi) in FACTOR_RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"factor {name}={value} is outside [{lo}, {hi}]")
        if self.identity < 0:
            raise ValueError(f"identity seed must be >= 0, got {self.identity}")

    def vector(self) -> np.ndarray:
        """The continuous factors in `FACTOR_NAMES` order (float32)."""
        return np.array([getattr(self, n) for n in FACTOR_NAMES], dtype=np.float32)

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def replace(self, **changes) -> Factors:
        return Factors(**{**asdict(self), **changes})

    @classmethod
    def from_dict(cls, d: dict) -> Factors:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class _Identity:
    """Details drawn from the identity seed only."""

    nose_length: float
    nose_width: float
    brow_thickness: float
    brow_tilt: float
    brow_lift: float
    iris: tuple[float, float, float]
    parting: float
    fringe: float
    ear_size: float
    mole: tuple[float, float] | None
    mouth_width: float
    jaw: float


_IRIS = ((70, 110, 170), (90, 60, 35), (60, 120, 80), (120, 100, 70), (40, 40, 50))


def identity_details(seed: int) -> _Identity:
    rng = np.random.default_rng([seed, 7919])
    mole = (float(rng.uniform(-0.28, 0.28)), float(rng.uniform(0.02, 0.2))) if rng.random() < 0.5 else None
    return _Identity(
        nose_length=float(rng.uniform(0.12, 0.24)), nose_width=float(rng.uniform(0.04, 0.09)),
        brow_thickness=float(rng.uniform(0.025, 0.06)), brow_tilt=float(rng.uniform(-0.25, 0.25)),
        brow_lift=float(rng.uniform(0.0, 0.06)), iris=tuple(c / 255 for c in _IRIS[rng.integers(len(_IRIS))]),
        parting=float(rng.uniform(-0.3, 0.3)), fringe=float(rng.uniform(0.0, 0.15)),
        ear_size=float(rng.uniform(0.06, 0.11)), mole=mole, mouth_width=float(rng.uniform(0.2, 0.26)),
        jaw=float(rng.uniform(0.0, 0.3)))


# ---------------------------------------------------------------------------------------------------- colours


def _lerp(a, b, t):
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))


def skin_colour(tan: float, green: float) -> tuple[float, float, float]:
    human = _lerp((0.96, 0.82, 0.72), (0.55, 0.36, 0.22), tan)
    zombie = _lerp((0.62, 0.85, 0.50), (0.25, 0.50, 0.20), tan)
    return _lerp(human, zombie, green)


def hair_colour(value: float) -> tuple[float, float, float]:
    black, brown, blonde = (0.10, 0.08, 0.08), (0.45, 0.27, 0.14), (0.92, 0.80, 0.48)
    return _lerp(black, brown, value * 2) if value < 0.5 else _lerp(brown, blonde, value * 2 - 1)


def background_colour(hue: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(hue, 0.40, 0.85)


MOUTH_COLOUR = (0.55, 0.08, 0.12)
EYE_WHITE = (0.97, 0.97, 0.97)
PUPIL = (0.05, 0.05, 0.05)


# ---------------------------------------------------------------------------------------------------- geometry


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size * 2 - 1
    return np.meshgrid(centres, centres, indexing="xy")


def _ellipse(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


FACE_CY = 0.02
FACE_RY = 0.60


def _face_rx(face_shape: float) -> float:
    return 0.40 + 0.16 * face_shape


def mouth_centre_line(x, factors: Factors, ident: _Identity):
    """y of the mouth's centre line: corners up for a smile (c > 0), down for a sad mouth (c < 0)."""
    c = factors.mouth_curvature
    w = ident.mouth_width
    return FACE_CY + 0.33 - c * 0.09 + c * 0.16 * (1 - (x / w) ** 2)


def render_supersampled(factors: Factors, size: int = IMAGE_SIZE * SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """float RGB H×W×3 in [0, 1] and int labels H×W at the supersampled resolution."""
    ident = identity_details(factors.identity)
    x, y = _grid(size)
    canvas = np.empty((size, size, 3), dtype=np.float64)
    bg = np.array(background_colour(factors.background_hue))
    canvas[:] = bg * (1.0 - 0.12 * (y[..., None] + 1) / 2)  # a gentle vertical gradient
    labels = np.zeros((size, size), dtype=np.int64)

    skin = np.array(skin_colour(factors.tan, factors.green))
    hair = np.array(hair_colour(factors.hair_colour))
    painter = _Painter(canvas, labels, x, y, factors, ident)
    face = _paint_head(painter, skin, hair)
    _paint_eyes_and_brows(painter, hair * 0.7, face)
    _paint_nose(painter, skin)
    _paint_mouth(painter)
    return np.clip(canvas, 0, 1), labels


@dataclass(frozen=True)
class _Painter:
    """What every painting step reads: the canvas and label map it paints on, the grid, the face's factors."""

    canvas: np.ndarray
    labels: np.ndarray
    x: np.ndarray
    y: np.ndarray
    factors: Factors
    ident: _Identity

    def paint(self, region, colour, label: str) -> None:
        self.canvas[region] = colour
        self.labels[region] = CLASS_INDEX[label]


EYE_Y = FACE_CY - 0.10


def _paint_head(painter: _Painter, skin: np.ndarray, hair: np.ndarray) -> np.ndarray:
    """Hair behind the head, neck, ears, face, mole and the hair on top; returns the face region."""
    x, y, factors, ident = painter.x, painter.y, painter.factors, painter.ident
    rx, ry, cy = _face_rx(factors.face_shape), FACE_RY, FACE_CY

    # long hair behind the head
    length = factors.hair_length
    back_bottom = cy + 0.05 + 0.85 * length
    back = _ellipse(x, y, 0, cy - 0.05, rx + 0.07 + 0.08 * length, ry + 0.04) | (
        (np.abs(x) <= rx + 0.07 + 0.08 * length) & (y >= cy - 0.05) & (y <= back_bottom))
    painter.paint(back, hair, "hair")

    # neck, ears, face (the jaw narrows below the eyes, more for narrow faces)
    neck = (np.abs(x) <= 0.17 + 0.05 * factors.face_shape) & (y >= cy + 0.35)
    painter.paint(neck, skin * 0.88, "skin")
    for side in (-1, 1):
        ear = _ellipse(x, y, side * rx * 0.98, cy - 0.02, ident.ear_size, ident.ear_size * 1.6)
        painter.paint(ear, skin * 0.93, "skin")
    narrowing = 1 - (0.18 + ident.jaw * 0.3) * (1 - factors.face_shape) * np.clip((y - cy) / ry, 0, 1)
    face = ((x / (rx * narrowing)) ** 2 + ((y - cy) / ry) ** 2) <= 1.0
    shade = 1 - 0.10 * np.clip(((x / rx) ** 2 + ((y - cy) / ry) ** 2), 0, 1)
    painter.canvas[face] = skin * shade[face][:, None]
    painter.labels[face] = CLASS_INDEX["skin"]
    if ident.mole is not None:
        mx, my = ident.mole
        painter.paint(_ellipse(x, y, mx * rx / 0.45, cy + my, 0.025, 0.025) & face, skin * 0.45, "skin")

    # hair on top: the scalp above a hairline with a side parting and a fringe
    hairline = cy - 0.30 + ident.fringe * (1 - np.abs(x - ident.parting)) - 0.10 * np.abs(x) ** 2
    cap = _ellipse(x, y, 0, cy - 0.02, rx + 0.06, ry + 0.06) & (y <= hairline) & (y <= cy - 0.05 + 0.0 * x)
    painter.paint(cap, hair, "hair")
    return face


def _paint_eyes_and_brows(painter: _Painter, brow_colour: np.ndarray, face: np.ndarray) -> None:
    """Eyes (white, iris, pupil) and brows (clipped to the face)."""
    x, y, factors, ident = painter.x, painter.y, painter.factors, painter.ident
    ey = EYE_Y
    ex = 0.15 + 0.10 * factors.eye_spacing
    erx = 0.07 + 0.045 * factors.eye_size
    ery = 0.55 * erx
    iris = np.array(ident.iris)
    for side in (-1, 1):
        white = _ellipse(x, y, side * ex, ey, erx, ery)
        painter.paint(white, EYE_WHITE, "eye")
        painter.paint(_ellipse(x, y, side * ex, ey, ery * 0.95, ery * 0.95) & white, iris, "eye")
        painter.paint(_ellipse(x, y, side * ex, ey, ery * 0.45, ery * 0.45) & white, PUPIL, "eye")
        brow_y = ey - ery - 0.06 - ident.brow_lift + side * ident.brow_tilt * (x - side * ex)
        brow = (np.abs(x - side * ex) <= erx * 1.1) & (np.abs(y - brow_y) <= ident.brow_thickness / 2)
        painter.paint(brow & face, brow_colour, "brow")


def _paint_nose(painter: _Painter, skin: np.ndarray) -> None:
    """A narrow wedge below the eyes, darker than the skin."""
    x, y, ident = painter.x, painter.y, painter.ident
    top, bottom = EYE_Y + 0.04, EYE_Y + 0.04 + ident.nose_length
    frac = np.clip((y - top) / (bottom - top), 0, 1)
    nose = (y >= top) & (y <= bottom) & (np.abs(x) <= ident.nose_width * (0.3 + 0.7 * frac))
    painter.paint(nose, skin * 0.78, "nose")


def _paint_mouth(painter: _Painter) -> None:
    """A thick dark-red crescent around the curved centre line."""
    x, y, factors, ident = painter.x, painter.y, painter.factors, painter.ident
    w = ident.mouth_width
    centre = mouth_centre_line(x, factors, ident)
    half = 0.055 * (1 - 0.55 * (x / w) ** 2) * (1 + 0.25 * abs(factors.mouth_curvature))
    mouth = (np.abs(x) <= w) & (np.abs(y - centre) <= half)
    painter.paint(mouth, MOUTH_COLOUR, "mouth")


def render(factors: Factors, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 H×W×3 RGB, uint8 H×W labels) at `size`²: area mean and majority label of SUPERSAMPLE² samples."""
    s = SUPERSAMPLE
    rgb, labels = render_supersampled(factors, size * s)
    pooled = rgb.reshape(size, s, size, s, 3).mean(axis=(1, 3))
    image = np.round(pooled * 255).astype(np.uint8)
    blocks = labels.reshape(size, s, size, s).transpose(0, 2, 1, 3).reshape(size, size, s * s)
    counts = np.stack([(blocks == k).sum(-1) for k in range(len(CLASSES))], axis=-1)
    return image, counts.argmax(-1).astype(np.uint8)


def render_batch(factor_list, size: int = IMAGE_SIZE):
    """uint8 N×3×H×W images (`benchmark.core.images` convention) and uint8 N×H×W masks, as torch tensors."""
    import torch

    images, masks = zip(*(render(f, size) for f in factor_list), strict=True)
    return (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(masks)))
