"""open_clip embedders for S_dir: OpenAI's ViT-B/32, ViT-B/16 and ViT-L/14 from local weights, and a tiny seeded
random CLIP for tests and CPU profiles.

Image preprocessing is part of the metric's spec:
- `"open_clip"`: the model's own evaluation transform on a PIL image made from the uint8 (bicubic resize of the
  short side, centre crop, CLIP normalisation). This is how CLIP scores are usually computed (and how the
  reproduction study's HF `CLIPImageProcessor` works).
- `"tensor"`: DiffusionCLIP's loss path: bicubic resize and centre crop on float tensors without antialiasing
  (torchvision's tensor default when DiffusionCLIP was written), then CLIP normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice
from metrics.backends.registry import register_backend, weights_file_path

PREPROCESS_MODES = ("open_clip", "tensor")

#: OpenAI's CLIP releases carry their sha256 in the download URL (openaipublic .../clip/models/<sha256>/<file>),
#: which OpenAI's `clip` package checks; the URLs are the ones open_clip 3.3.0 lists (open_clip/pretrained.py).
OPENAI_CLIP_SHA256 = {
    "ViT-B-32.pt": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    "ViT-B-16.pt": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    "ViT-L-14.pt": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
}


class OpenClipEmbedder:
    """A loaded open_clip model with its tokenizer and a pinned image preprocessing."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, device: torch.device, preprocess: str = "open_clip"):
        import open_clip

        require_choice("CLIP image preprocessing", preprocess, list(PREPROCESS_MODES))
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = device
        self.preprocess = preprocess
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", model.visual.image_size)
        self.image_size = size if isinstance(size, int) else size[0]
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        self.pil_transform = open_clip.image_transform(self.image_size, is_train=False, mean=tuple(self.mean.flatten()),
                                                       std=tuple(self.std.flatten()), interpolation="bicubic",
                                                       resize_mode="shortest")

    def _pil_batch(self, images: torch.Tensor) -> torch.Tensor:
        arrays = images.permute(0, 2, 3, 1).cpu().numpy()
        return torch.stack([self.pil_transform(Image.fromarray(np.ascontiguousarray(a))) for a in arrays])

    def _tensor_batch(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32) / 255.0
        h, w = x.shape[-2:]
        scale = self.image_size / min(h, w)
        new_h, new_w = max(self.image_size, round(h * scale)), max(self.image_size, round(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=False)
        top, left = (new_h - self.image_size) // 2, (new_w - self.image_size) // 2
        x = x[..., top:top + self.image_size, left:left + self.image_size]
        return (x - self.mean.to(x)) / self.std.to(x)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = self._pil_batch(images) if self.preprocess == "open_clip" else self._tensor_batch(images)
        return self.model.encode_image(x.to(self.device)).float().cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens).float().cpu()


def build_openai_clip(model_name: str, weights: Path) -> torch.nn.Module:
    import open_clip
    from open_clip.model import build_model_from_openai_state_dict

    if weights.suffix == ".pt":
        # OpenAI's own release: a TorchScript archive (its sha256 is the URL path, verified before this call).
        # Only its tensors are used, to build a plain open_clip CLIP (with QuickGELU, as OpenAI trained it).
        state_dict = torch.jit.load(str(weights), map_location="cpu").state_dict()
        state_dict.pop("attn_mask", None)  # a constant causal mask some exporters store; CLIP rebuilds it
        return build_model_from_openai_state_dict(state_dict).float()
    # open_clip-format checkpoints: safetensors, or a state dict read with weights_only=True
    return open_clip.create_model(model_name, pretrained=str(weights), force_quick_gelu=True, device="cpu",
                                  weights_only=True)


def load_openai_clip(model_name: str, file_name: str):
    """Loader for OpenAI CLIP weights: OpenAI's TorchScript release, or open_clip-format files."""

    def loader(weights: Path, device: torch.device, preprocess: str = "open_clip") -> OpenClipEmbedder:
        import open_clip

        weights = weights_file_path(weights, file_name)
        try:
            model = build_openai_clip(model_name, weights)
        except (RuntimeError, KeyError) as err:
            raise BenchError(f"could not load {model_name} CLIP weights from {weights}: {err}",
                             fix="check that the file is the pinned checkpoint of this model") from err
        return OpenClipEmbedder(model, open_clip.get_tokenizer(model_name), device=device, preprocess=preprocess)

    return loader


#: A CLIP small enough to build in well under a second on a CPU; its weights are random (seeded).
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def load_tiny_random_clip(weights: None, device: torch.device, seed: int = 0,
                          preprocess: str = "open_clip") -> OpenClipEmbedder:
    import open_clip

    g = torch.random.fork_rng(devices=[])
    with g:
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    return OpenClipEmbedder(model, open_clip.get_tokenizer("ViT-B-32"), device=device, preprocess=preprocess)


register_backend("clip", "clip-vit-b32-openai", load_openai_clip("ViT-B-32", "ViT-B-32.pt"),
                 model_id="openai:ViT-B/32", weights_file="ViT-B-32.pt", sha256=OPENAI_CLIP_SHA256["ViT-B-32.pt"],
                 description="OpenAI CLIP ViT-B/32 (DiffusionCLIP's S_dir default)")
register_backend("clip", "clip-vit-b16-openai", load_openai_clip("ViT-B-16", "ViT-B-16.pt"),
                 model_id="openai:ViT-B/16", weights_file="ViT-B-16.pt", sha256=OPENAI_CLIP_SHA256["ViT-B-16.pt"],
                 description="OpenAI CLIP ViT-B/16 (the Asyrp training loss's model)")
register_backend("clip", "clip-vit-l14-openai", load_openai_clip("ViT-L-14", "ViT-L-14.pt"),
                 model_id="openai:ViT-L/14", weights_file="ViT-L-14.pt", sha256=OPENAI_CLIP_SHA256["ViT-L-14.pt"],
                 description="OpenAI CLIP ViT-L/14 (the reproduction study's S_dir model)")
register_backend("clip", "tiny-clip-random", load_tiny_random_clip, model_id="open_clip:tiny-random",
                 needs_weights=False, description="tiny seeded random CLIP (tests, CPU profiles); meaningless scores")
