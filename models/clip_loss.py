"""The directional CLIP loss of the authors' trainer (StyleGAN-NADA / DiffusionCLIP `CLIPLoss`, direction term).

    ΔT = normalize(mean over 79 templates of [normalize(E_T(tmpl(target))) − normalize(E_T(tmpl(source)))])
    ΔI = normalize(normalize(E_I(edited)) − normalize(E_I(source)))      (‖·‖ + 1e-7 in the last normalisation)
    loss = −log((1 + cos(ΔI, ΔT)) / 2)        (the authors write it −log((2 − L_dir)/2), L_dir = 1 − cos)

Image preprocessing is differentiable: [-1, 1] → [0, 1], bicubic resize of the short side and centre crop to the
CLIP input size, CLIP normalisation. The CLIP model and tokenizer are injected (open_clip objects).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# StyleGAN-NADA's `imagenet_templates` (79 of CLIP's 80 ImageNet prompts), which the authors' CLIPLoss averages over.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)


class DirectionalClipLoss(nn.Module):
    """Per-image directional CLIP loss against each image's *own* source (the real input image).

    `clip_model` needs `encode_image` and `encode_text` (open_clip's CLIP); `tokenizer` maps a list of strings to
    token ids. `image_size`/`mean`/`std` default to `clip_model.visual.image_size` and OpenAI's statistics.
    `antialias=False` matches the torchvision the authors ran (tensor resize without antialiasing).
    `text_cosine` is cos(E_T(source), E_T(target)) of the raw prompts (no templates): the factor the authors put
    on λ_recon and use for t_edit.
    """

    def __init__(self, clip_model: nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], source_text: str,
                 target_text: str, *, templates: Sequence[str] = IMAGENET_TEMPLATES, image_size: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, antialias: bool = False,
                 model_name: str = "injected"):
        super().__init__()
        self.clip = clip_model.eval().requires_grad_(False)
        self.source_text, self.target_text = source_text, target_text
        self.templates = tuple(templates)
        self.image_size = int(image_size or _visual_size(clip_model))
        self.antialias = antialias
        self.model_name = model_name
        mean = mean or getattr(clip_model.visual, "image_mean", None) or OPENAI_CLIP_MEAN
        std = std or getattr(clip_model.visual, "image_std", None) or OPENAI_CLIP_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            device = next(clip_model.parameters()).device
            self.register_buffer("target_direction",
                                 self._text_direction(tokenizer, device), persistent=False)
            raw = clip_model.encode_text(tokenizer([source_text, target_text]).to(device)).float()
            self.text_cosine = float(F.cosine_similarity(raw[:1], raw[1:], dim=1, eps=1e-6))

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable CLIP preprocessing of pixels in [-1, 1]."""
        x = (pixels.float() + 1) / 2
        x = TF.resize(x, self.image_size, interpolation=InterpolationMode.BICUBIC, antialias=self.antialias)
        x = TF.center_crop(x, [self.image_size, self.image_size])
        return (x - self.mean) / self.std

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm CLIP image features (gradients flow to `pixels`)."""
        features = self.clip.encode_image(self.preprocess(pixels)).float()
        return features / features.norm(dim=-1, keepdim=True)

    def directional_cosine(self, edited: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
        """cos(ΔI, ΔT) per image; `source_features` from `encode_images(source)` (same order as `edited`)."""
        return directional_cosine_of_features(self.encode_images(edited), source_features, self.target_direction)

    def forward(self, edited: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
        """The per-image training loss −log((1 + cos(ΔI, ΔT)) / 2), shape (N,)."""
        if source_features.shape[0] != edited.shape[0]:
            raise ValueError(f"{edited.shape[0]} edited images but {source_features.shape[0]} source features")
        return directional_loss_of_cosine(self.directional_cosine(edited, source_features))

    def same_image_encoder(self, other: DirectionalClipLoss) -> bool:
        """True when `other` encodes images exactly as this loss does (same CLIP module and preprocessing), so
        both can share one batched image encode."""
        return (other.clip is self.clip and other.image_size == self.image_size
                and other.antialias == self.antialias and torch.equal(other.mean, self.mean)
                and torch.equal(other.std, self.std))

    def spec(self) -> dict[str, Any]:
        return {"model": self.model_name, "source_text": self.source_text, "target_text": self.target_text,
                "templates": len(self.templates), "image_size": self.image_size, "antialias": self.antialias,
                "loss": "-log((1+cos)/2)", "text_cosine": self.text_cosine}

    def _text_direction(self, tokenizer, device) -> torch.Tensor:
        def features(text: str) -> torch.Tensor:
            f = self.clip.encode_text(tokenizer([t.format(text) for t in self.templates]).to(device)).float()
            return f / f.norm(dim=-1, keepdim=True)

        direction = (features(self.target_text) - features(self.source_text)).mean(dim=0, keepdim=True)
        return direction / direction.norm(dim=-1, keepdim=True)


def directional_cosine_of_features(image_features: torch.Tensor, source_features: torch.Tensor,
                                   target_direction: torch.Tensor) -> torch.Tensor:
    """cos(ΔI, ΔT) from unit-norm image features: ΔI = normalize(features − source) with ‖·‖ + 1e-7.
    `target_direction` is one ΔT (1×D) or one per row (N×D)."""
    delta = image_features - source_features
    delta = delta / (delta.norm(dim=-1, keepdim=True) + 1e-7)
    return F.cosine_similarity(delta, target_direction, dim=-1)


def directional_loss_of_cosine(cosine: torch.Tensor) -> torch.Tensor:
    """The authors' −log((1 + cos) / 2) (their −log((2 − L_dir) / 2))."""
    return -torch.log((1 + cosine) / 2)


def _visual_size(clip_model: nn.Module) -> int:
    size = getattr(getattr(clip_model, "visual", None), "image_size", None)
    if size is None:
        raise ValueError("cannot tell the CLIP input size; pass image_size=")
    return int(size[0] if isinstance(size, tuple | list) else size)
