"""Load the synthetic world's shipped weights: sha256 checked first, safetensors only, strict state dicts.

The architecture configs live in code (ddpm.py, clip_model.py, oracle.py); the file's metadata records the config
it was trained with, and a file whose config differs from the code's is refused (it would not load strictly).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmark.core.errors import BenchError, DigestMismatchError, MissingWeightsError
from benchmark.core.hashing import sha256_file

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
RETRAIN = "python -m benchmark.synthetic.train --out DIR && python -m benchmark.synthetic.train publish --out DIR"


def read_verified(path: str | Path, sha256: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, training metadata) of a shipped safetensors file whose digest matches `sha256`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"synthetic-world weights not found: {path}",
                                  fix=f"restore the file with `git checkout -- {path}`, or retrain: {RETRAIN}")
    if sha256 is None:
        raise BenchError(f"{path}: no sha256 pinned for this file; refusing to load unverified weights",
                         fix="pin the digest in its model manifest (the publish step writes it)")
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise DigestMismatchError(f"{path}: sha256 {actual} does not match the pinned {sha256}",
                                  fix=f"restore the shipped file (`git checkout -- {path}`), or retrain and publish "
                                      f"again: {RETRAIN}")
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        meta = json.loads((f.metadata() or {}).get("info", "{}"))
    return tensors, meta


def _load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise BenchError(f"{path} does not fit the architecture in the code: {err}",
                         fix=f"retrain and publish the synthetic models: {RETRAIN}") from err
    return module.eval().requires_grad_(False)


def load_ddpm(path: str | Path, sha256: str | None, *, device="cpu", name: str = "synthetic-ddpm"):
    """The DDPM as a `models.DiffusionModel` (authors' linear schedule, T = 1000, 2×2 pixel-unshuffle codec)."""
    from benchmark.synthetic.ddpm import PatchCodec, build_unet
    from models.diffusion_model import DiffusionModel
    from models.hspace import HSpaceUNet
    from models.schedule import linear_alphas_cumprod

    tensors, meta = read_verified(path, sha256)
    unet = _load_strict(build_unet(meta.get("config")), tensors, Path(path))
    codec = PatchCodec()
    return DiffusionModel(HSpaceUNet(unet), linear_alphas_cumprod(), int(unet.config.sample_size) * codec.patch,
                          codec, name=name).to(device)


def load_clip(path: str | Path, sha256: str | None, *, device="cpu"):
    """(open_clip CLIP, tokenizer)."""
    from benchmark.synthetic.clip_model import build_clip, expand_token_rows, tokenizer

    tensors, meta = read_verified(path, sha256)
    model = build_clip(meta.get("config"))
    try:
        tensors, stored_rows = expand_token_rows(tensors, model.token_embedding.num_embeddings)
    except ValueError as err:
        raise BenchError(f"{path}: {err}", fix=f"retrain and publish the synthetic models: {RETRAIN}") from err
    model, tok = _load_strict(model, tensors, Path(path)), tokenizer()
    if stored_rows is not None:
        _refuse_unstored_tokens(model, stored_rows, tok, Path(path))
    return model.to(device), tok


def _refuse_unstored_tokens(model: torch.nn.Module, stored_rows: torch.Tensor, tok, path: Path) -> None:
    """Make text with a token whose embedding row the file leaves out an error instead of a silent zero row."""

    def check(_module, inputs):
        ids = inputs[0]
        unknown = ~torch.isin(ids, stored_rows.to(ids.device))
        if bool(unknown.any()):
            missing = sorted(set(ids[unknown].tolist()))
            words = tok.decode(missing[:10]).strip()
            raise BenchError(f"{path.name} knows only the tokens of its training captions; {len(missing)} token(s) "
                             f"of this text are not among them ({words!r})",
                             fix="write the prompt in the caption vocabulary of benchmark/synthetic/captions.py")

    model.token_embedding.register_forward_pre_hook(check)


def load_oracle(path: str | Path, sha256: str | None, *, device="cpu"):
    from benchmark.synthetic.oracle import FactorOracle

    tensors, _ = read_verified(path, sha256)
    return _load_strict(FactorOracle(), tensors, Path(path)).to(device)


def load_segmenter(path: str | Path, sha256: str | None, *, device="cpu"):
    from benchmark.synthetic.oracle import Segmenter

    tensors, _ = read_verified(path, sha256)
    return _load_strict(Segmenter(), tensors, Path(path)).to(device)


def shipped_file(model_name: str) -> tuple[Path, str | None]:
    """(path in the repo, pinned sha256) of a shipped model's single file, from its latest model manifest.

    Read by file name (`synthetic-NAME.yaml` holds the latest version), which is much cheaper than the registry."""
    from benchmark.core.paths import manifests_dir
    from benchmark.inputs.manifests import load_manifest

    return _single_file(load_manifest(manifests_dir() / "models" / f"{model_name}.yaml").manifest)


def manifest_file(ref: str) -> tuple[Path, str | None]:
    """(path, pinned sha256) of the single file of the model manifest `ref` (`name@version`, or a bare name for the
    latest version)."""
    from benchmark.inputs.manifests.registry import ManifestRegistry

    return _single_file(ManifestRegistry().get("model", ref).manifest)


def _single_file(manifest) -> tuple[Path, str | None]:
    from benchmark.inputs.fetch import local_path

    if len(manifest.files) != 1:
        raise BenchError(f"model {manifest.ref} lists {len(manifest.files)} files; "
                         "the synthetic world ships one per model")
    return local_path(manifest, manifest.files[0]), manifest.files[0].sha256


def pinned_file(model_name: str, weights: str | Path | None = None) -> tuple[Path, str]:
    """(path, pinned sha256) of the file to load for the synthetic model `model_name`.

    Without `weights`, the shipped file of its model manifest. With `weights`, the digest comes from the version
    of `model_name` whose manifest pins that path: a suite that names version 2 must not have its file checked
    against version 1's digest.
    """
    if weights is None:
        return shipped_file(model_name)
    from benchmark.inputs.fetch import local_path
    from benchmark.inputs.manifests.registry import ManifestRegistry

    wanted = Path(weights).resolve()
    versions = [lm.manifest for lm in ManifestRegistry().all("model") if lm.manifest.name == model_name]
    for manifest in sorted(versions, key=lambda m: m.version):
        for f in manifest.files:
            if local_path(manifest, f).resolve() == wanted and f.sha256:
                return wanted, f.sha256
    raise BenchError(f"{wanted}: no version of the model manifest {model_name!r} pins this file, so there is no "
                     "digest to check it against",
                     fix=f"load a file that a {model_name} manifest lists, or publish the retrained weights: "
                         f"{RETRAIN}")
