"""Harness model loaders of the synthetic world (`benchmark.plan.loaders.LOADERS`): the DDPM and the loss's CLIP.

Both read the file their model manifest ships in the repo (`source: {type: local}`) and check its pinned sha256
before loading (safetensors only).
"""

from __future__ import annotations

from benchmark.plan.loaders import LOADERS


def _file(manifest):
    from benchmark.core.errors import MissingWeightsError
    from benchmark.inputs.fetch import local_path

    if len(manifest.files) != 1:
        raise MissingWeightsError(f"model {manifest.ref} lists {len(manifest.files)} files; its loader expects one")
    f = manifest.files[0]
    return local_path(manifest, f), f.sha256


def register() -> None:
    if "synthetic-ddpm" in LOADERS:
        return

    @LOADERS.register("synthetic-ddpm")
    def _ddpm(manifest, *, device, weights_root=None):
        """The synthetic world's DDPM as a `models.DiffusionModel` (weights shipped in the repo)."""
        from benchmark.synthetic.weights import load_ddpm

        path, sha = _file(manifest)
        return load_ddpm(path, sha, device=device, name=manifest.ref)

    @LOADERS.register("synthetic-clip")
    def _clip(manifest, *, device, weights_root=None):
        """(open_clip CLIP, tokenizer) of the synthetic world (the Asyrp loss's CLIP)."""
        from benchmark.synthetic.weights import load_clip

        path, sha = _file(manifest)
        return load_clip(path, sha, device=device)
