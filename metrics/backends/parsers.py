"""Face parsers for segmentation consistency: the paper-faithful BiSeNet and the SegFormer on the hub.

Both parse at a pinned input size and return labels at that size. Preprocessing options (part of SC's spec):
- `input_size`: the square side the image is resized to (bilinear with antialiasing; no resize when equal);
- `normalize`: "imagenet" (the parsers' training normalisation) or "none" ([0, 1] input).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice
from metrics.backends.bisenet import BiSeNet, random_bisenet
from metrics.backends.registry import register_backend, weights_file_path
from metrics.labels import BISENET_FACE_PARSING, CELEBAMASK_HQ, LabelSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("imagenet", "none")


def prepare(images: torch.Tensor, input_size: int, normalize: str, device: torch.device) -> torch.Tensor:
    """uint8 N×3×H×W -> float N×3×S×S on `device`: [0, 1], resized, normalised."""
    require_choice("parser normalisation", normalize, list(NORMALIZATIONS))
    x = images.to(device, torch.float32) / 255.0
    if tuple(x.shape[-2:]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    if normalize == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x


class BiSeNetParser:
    label_set = BISENET_FACE_PARSING

    def __init__(self, net: BiSeNet, *, device: torch.device, input_size: int = 256, normalize: str = "imagenet"):
        self.net = net.to(device).eval().requires_grad_(False)
        self.device, self.input_size, self.normalize = device, input_size, normalize

    @torch.no_grad()
    def parse(self, images: torch.Tensor) -> torch.Tensor:
        x = prepare(images, self.input_size, self.normalize, self.device)
        return self.net(x).argmax(1).cpu()


def load_bisenet(weights: Path, device: torch.device, input_size: int = 256, normalize: str = "imagenet"):
    weights = weights_file_path(weights, "79999_iter.pth")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = BiSeNet(len(BISENET_FACE_PARSING))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BenchError(f"{weights} is not a BiSeNet face-parsing checkpoint with the expected layout: {err}",
                         fix="use zllrunning/face-parsing.PyTorch's 79999_iter.pth (run `python run_all.py fetch "
                             "bisenet-79999`)") from err
    return BiSeNetParser(net, device=device, input_size=input_size, normalize=normalize)


def load_random_bisenet(weights: None, device: torch.device, seed: int = 0, input_size: int = 256,
                        normalize: str = "imagenet"):
    return BiSeNetParser(random_bisenet(seed), device=device, input_size=input_size, normalize=normalize)


def label_set_from_id2label(name: str, id2label: dict) -> LabelSet:
    """A LabelSet from a transformers config's `id2label`, checked against the CelebAMask-HQ class names."""
    classes = tuple(str(id2label[k] if k in id2label else id2label[str(k)]) for k in range(len(id2label)))
    unknown = [c for c in classes if c not in CELEBAMASK_HQ.classes]
    if unknown:
        raise BenchError(f"face parser {name!r} has classes that are not CelebAMask-HQ classes: {', '.join(unknown)}",
                         fix="use the pinned revision, whose config carries the fixed CelebAMask-HQ labels")
    return LabelSet(name, classes)


class SegformerParser:
    """transformers' SegformerForSemanticSegmentation; logits (at 1/4 of the input) are upsampled bilinearly to
    `input_size` before the argmax, as the model card's usage does."""

    def __init__(self, model, *, device: torch.device, input_size: int = 512, normalize: str = "imagenet",
                 label_set: LabelSet):
        self.model = model.to(device).eval().requires_grad_(False)
        self.device, self.input_size, self.normalize = device, input_size, normalize
        self.label_set = label_set

    @torch.no_grad()
    def parse(self, images: torch.Tensor) -> torch.Tensor:
        x = prepare(images, self.input_size, self.normalize, self.device)
        logits = self.model(pixel_values=x).logits
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits.argmax(1).cpu()


def load_segformer(weights: Path, device: torch.device, input_size: int = 512, normalize: str = "imagenet"):
    from transformers import SegformerForSemanticSegmentation

    if not (weights / "config.json").is_file():
        raise BenchError(f"{weights} has no config.json; pass the folder of the fetched jonathandinu/face-parsing "
                         "snapshot", fix="run `python run_all.py fetch segformer-face-parsing`")
    config = json.loads((weights / "config.json").read_text())
    label_set = label_set_from_id2label("segformer-face-parsing", config["id2label"])
    model = SegformerForSemanticSegmentation.from_pretrained(str(weights), local_files_only=True, use_safetensors=True)
    return SegformerParser(model, device=device, input_size=input_size, normalize=normalize, label_set=label_set)


def tiny_random_segformer(seed: int = 0):
    """A 2-stage SegFormer with 19 CelebAMask-HQ labels and seeded random weights (tests)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[4, 2],
                             hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
                             mlp_ratios=[2, 2], decoder_hidden_size=32, num_labels=len(CELEBAMASK_HQ),
                             id2label=dict(enumerate(CELEBAMASK_HQ.classes)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SegformerForSemanticSegmentation(config)


def load_random_segformer(weights: None, device: torch.device, seed: int = 0, input_size: int = 256,
                          normalize: str = "imagenet"):
    model = tiny_random_segformer(seed)
    label_set = label_set_from_id2label("tiny-faceparser-random", model.config.id2label)
    return SegformerParser(model, device=device, input_size=input_size, normalize=normalize, label_set=label_set)


#: sha256 of 79999_iter.pth (53,289,463 bytes); the same digest is recorded for facexlib's parsing_bisenet.pth.
BISENET_79999_SHA256 = "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"

register_backend("face-parser", "bisenet-79999", load_bisenet, model_id="zllrunning/face-parsing.PyTorch:79999_iter",
                 weights_file="79999_iter.pth", sha256=BISENET_79999_SHA256, description="BiSeNet (ResNet-18) face parser the Asyrp authors' SC used")
register_backend("face-parser", "segformer-face-parsing", load_segformer,
                 model_id="hf:jonathandinu/face-parsing@373bfce5ebb8c57c5d389ea790e109b237e346a9",
                 weights_file="model.safetensors", description="SegFormer (MiT-B5) face parser, CelebAMask-HQ labels")
register_backend("face-parser", "bisenet-random", load_random_bisenet, model_id="bisenet:random", needs_weights=False,
                 description="BiSeNet with seeded random weights (tests, CPU profiles); meaningless labels")
register_backend("face-parser", "tiny-faceparser-random", load_random_segformer, model_id="segformer:tiny-random",
                 needs_weights=False, description="tiny SegFormer with seeded random weights (tests)")
