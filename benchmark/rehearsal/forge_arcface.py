"""insightface's `buffalo_l.zip`, forged: five ONNX members at the zip's top level, as insightface unpacks the pack
into `models/buffalo_l/`.

- `w600k_r50.onnx`: the full IResNet-50 of insightface's arcface_torch (`backbones/iresnet.py`: 3×3 stem, 64
  channels, PReLU; IBasicBlock stages [3, 4, 14, 3] of 64/128/256/512 channels, each stride 2; BatchNorm2d, flatten
  of 512×7×7, Linear to 512, BatchNorm1d), exported with a dynamic batch: input 1×3×112×112 (N×3×112×112), output
  N×512, 43.6 M parameters, about 174 MB like the release. No Sub/Mul at the input, so insightface normalises with
  mean = std = 127.5, as it does for the real file. Weights random (seeded).
- `det_10g.onnx`: NOT the SCRFD-10GF network; a small convolutional stand-in with SCRFD's interface (input
  1×3×H×W with dynamic H, W; nine outputs, score N×1, bbox N×4, kps N×10 for strides 8, 16, 32 with two anchors per
  cell), so insightface routes it to its SCRFD detector. The ID metric does not run a detector (it crops).
- `genderage.onnx` (input 96², 3 outputs), `2d106det.onnx` (192², 212), `1k3d68.onnx` (192², 3309): small
  stand-ins with the release's input and output shapes (insightface routes by those shapes). Sizes differ from the
  release's (1.3 MB, 5 MB, 144 MB); the metrics never read them.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from benchmark.core.atomic import atomic_path
from benchmark.rehearsal.fill import fill_module_, meta_build

MEMBERS = ("1k3d68.onnx", "2d106det.onnx", "det_10g.onnx", "genderage.onnx", "w600k_r50.onnx")


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, planes, 3, 1, 1, bias=False)
        self.bn2, self.prelu = nn.BatchNorm2d(planes), nn.PReLU(planes)
        self.conv2, self.bn3 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet50(nn.Module):
    def __init__(self, layers=(3, 4, 14, 3), features: int = 512):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks, cin = [], 64
        for planes, n in zip((64, 128, 256, 512), layers, strict=True):
            for i in range(n):
                blocks.append(IBasicBlock(cin, planes, 2 if i == 0 else 1))
                cin = planes
        self.body = nn.Sequential(*blocks)
        self.bn2, self.fc, self.features = nn.BatchNorm2d(512), nn.Linear(512 * 7 * 7, features), nn.BatchNorm1d(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(torch.flatten(self.bn2(self.body(self.stem(x))), 1)))


class ScrfdShaped(nn.Module):
    """SCRFD's outputs from a few strided convolutions: per stride, 2 anchors per cell."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.down = nn.ModuleList([nn.Identity(), nn.Conv2d(16, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 4, 1)])
        self.heads = nn.ModuleList([nn.Conv2d(16, 2 * k, 1) for _ in range(3) for k in (1, 4, 10)])

    def forward(self, x: torch.Tensor):
        f8 = self.trunk(x)
        feats = [down(f8) for down in self.down]
        outs = {1: [], 4: [], 10: []}
        for i, f in enumerate(feats):
            for j, k in enumerate((1, 4, 10)):
                y = self.heads[3 * i + j](f).permute(0, 2, 3, 1).reshape(-1, k)
                outs[k].append(torch.sigmoid(y) if k == 1 else y)
        return (*outs[1], *outs[4], *outs[10])


def _head(size: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, outputs))


def _export(net: nn.Module, example: torch.Tensor, path: Path, *, outputs: int, dynamic: dict) -> None:
    names = [f"out{i}" for i in range(outputs)]
    with torch.no_grad():
        torch.onnx.export(net.eval(), example, str(path), input_names=["input.1"], output_names=names,
                          dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)


def write_members(folder: Path, seed: int) -> dict[str, Path]:
    """The five ONNX files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / name for name in MEMBERS}
    r50 = fill_module_(meta_build(IResNet50), seed, gain=2 ** 0.5)
    _export(r50, torch.zeros(1, 3, 112, 112), out["w600k_r50.onnx"], outputs=1,
            dynamic={"input.1": {0: "None"}, "out0": {0: "None"}})
    det = fill_module_(meta_build(ScrfdShaped), seed + 1, gain=2 ** 0.5)
    _export(det, torch.zeros(1, 3, 640, 640), out["det_10g.onnx"], outputs=9,
            dynamic={"input.1": {2: "height", 3: "width"}, **{f"out{i}": {0: f"anchors{i}"} for i in range(9)}})
    for name, size, n_out, s in (("genderage.onnx", 96, 3, 2), ("2d106det.onnx", 192, 212, 3),
                                 ("1k3d68.onnx", 192, 3309, 4)):
        _export(fill_module_(meta_build(_head, size, n_out), seed + s), torch.zeros(1, 3, size, size), out[name],
                outputs=1, dynamic={"input.1": {0: "None"}, "out0": {0: "None"}})
    return out


def write_buffalo_zip(path: Path, seed: int) -> Path:
    """`buffalo_l.zip` with the members stored (ONNX compresses poorly; the release is deflated, which zipfile
    reads the same way)."""
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        members = write_members(Path(tmp), seed)
        with atomic_path(path) as staged, zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED) as zf:
            for name in MEMBERS:
                info = zipfile.ZipInfo(name, date_time=(2022, 1, 1, 0, 0, 0))  # fixed: same seed, same bytes
                with open(members[name], "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    return path
