"""The ArcFace r50 architecture (insightface's IResNet-50, the network inside buffalo_l's w600k_r50.onnx) in
torch, for timing and counting the identity metric's batch with random weights. The run itself uses the ONNX file
through onnxruntime; this twin has its shape: a 3×3 stem, four stages of improved residual blocks (BN → conv →
BN → PReLU → conv → BN) with 3, 4, 14 and 3 blocks of 64, 128, 256 and 512 channels, each stage halving the
resolution (112 → 7), then BN, a 512·7·7 → 512 linear layer and BatchNorm1d (Deng et al., ArcFace; insightface
recognition/arcface_torch/backbones/iresnet.py)."""

from __future__ import annotations

import torch
from torch import nn

LAYERS_R50 = (3, 4, 14, 3)
WIDTHS = (64, 128, 256, 512)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    def __init__(self, layers=LAYERS_R50, embedding: int = 512):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks, cin = [], 64
        for n, width in zip(layers, WIDTHS, strict=True):
            blocks += [_Block(cin, width, 2)] + [_Block(width, width, 1) for _ in range(n - 1)]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(512), nn.Flatten(), nn.Linear(512 * 7 * 7, embedding),
                                  nn.BatchNorm1d(embedding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class TorchArcFace:
    """The identity back-end's protocol (`embed`) over a random IResNet-50, on the DiffusionCLIP crop at 112²."""

    def __init__(self, device: torch.device, seed: int = 0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = IResNet().eval().requires_grad_(False).to(device)
        self.device = device

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
        from metrics.backends.identity import dclip_crop

        crops = dclip_crop(images.cpu(), 112).to(self.device)
        return self.net((crops - 127.5) / 127.5).float().cpu(), {}
